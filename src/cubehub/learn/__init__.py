"""Land-cover learning on composite stores: sample points, check a model's features, predict a
class map tile by tile."""
