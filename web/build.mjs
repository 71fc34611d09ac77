// Copies the map library from node_modules into the Python package (src/cubehub/maps/static/vendor/):
// only the minified script and its stylesheet; the page draws no marker images.
// Run: npm ci --prefix web && npm run --prefix web build
import { copyFileSync, mkdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const target = join(here, "..", "src", "cubehub", "maps", "static", "vendor");
const leaflet = join(here, "node_modules", "leaflet");
const { version } = JSON.parse(readFileSync(join(leaflet, "package.json"), "utf8"));

mkdirSync(target, { recursive: true });
for (const name of ["leaflet.js", "leaflet.css"]) {
  copyFileSync(join(leaflet, "dist", name), join(target, name));
  console.log(`leaflet ${version}: ${name} (${statSync(join(target, name)).size} bytes)`);
}
