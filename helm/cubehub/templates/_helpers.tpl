{{- /*
Names, labels and shared pod pieces of the cubehub chart, plus the install-time checks
(cubehub.validate) that values.schema.json cannot express.
*/}}

{{- /* Names are fixed (one release per namespace, like JupyterHub's chart): the JupyterHub
values block refers to some of them literally, and the checks below keep the two in step. */}}
{{- define "cubehub.userServiceAccount" -}}cubehub-user{{- end }}
{{- define "cubehub.batchServiceAccount" -}}cubehub-batch{{- end }}
{{- /* Cluster-scoped names carry the release namespace: several releases may share a cluster. */}}
{{- define "cubehub.userClusterRole" -}}cubehub-{{ .Release.Namespace }}-user{{- end }}
{{- define "cubehub.hubClusterRole" -}}cubehub-{{ .Release.Namespace }}-hub{{- end }}
{{- /* The label the hub puts on the namespaces it creates, with the release namespace as value. */}}
{{- define "cubehub.userNamespaceLabel" -}}cubehub.io/user-namespace{{- end }}
{{- define "cubehub.daskConfigName" -}}cubehub-dask-config{{- end }}
{{- define "cubehub.envConfigName" -}}cubehub-env{{- end }}
{{- define "cubehub.hubConfigName" -}}cubehub-hub{{- end }}
{{- define "cubehub.jobsConfigName" -}}cubehub-jobs{{- end }}

{{- /* Where the files land inside the pods. Dask reads every YAML file in /etc/dask. */}}
{{- define "cubehub.daskConfigPath" -}}/etc/dask/cubehub.yaml{{- end }}
{{- define "cubehub.notebookDaskConfigPath" -}}/etc/dask/cubehub-notebook.yaml{{- end }}
{{- define "cubehub.podTemplatePath" -}}/etc/cubehub/dask-pod.yaml{{- end }}
{{- define "cubehub.jobsDir" -}}/etc/cubehub/jobs{{- end }}

{{- /* Environment variable names that hold credentials: the same pattern as cubehub's own check
(cubehub.credentials.SECRET_NAME_PATTERN; a test keeps the two equal). */}}
{{- define "cubehub.secretNamePattern" -}}
(?i)^key$|secret|token|password|passwd|credential|access_key|account_key|private|sas|connection_string|signature|auth
{{- end }}

{{- define "cubehub.labels" -}}
app.kubernetes.io/name: cubehub
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end }}

{{- define "cubehub.image" -}}
{{ .Values.image.name }}:{{ .Values.image.tag }}
{{- end }}

{{- /* Pod labels that workload identity needs (Azure selects pods by label). */}}
{{- define "cubehub.identityPodLabels" -}}
{{- if eq .Values.workloadIdentity.provider "azure" }}
azure.workload.identity/use: "true"
{{- end }}
{{- end }}

{{- /* envFrom of every cubehub container: non-secret object-store settings and, by reference,
the credentials Secret. */}}
{{- define "cubehub.envFrom" -}}
- configMapRef:
    name: {{ include "cubehub.envConfigName" . }}
{{- with .Values.objectStore.existingSecret }}
- secretRef:
    name: {{ . }}
{{- end }}
{{- end }}

{{- /* Volumes and mounts that give a pod the Dask defaults and the Dask pod template. */}}
{{- define "cubehub.configVolumes" -}}
- name: dask-config
  configMap:
    name: {{ include "cubehub.daskConfigName" . }}
{{- end }}
{{- define "cubehub.configVolumeMounts" -}}
- name: dask-config
  mountPath: {{ include "cubehub.daskConfigPath" . }}
  subPath: cubehub.yaml
  readOnly: true
- name: dask-config
  mountPath: {{ include "cubehub.podTemplatePath" . }}
  subPath: dask-pod.yaml
  readOnly: true
{{- end }}

{{- /* requests == limits for a Dask pod sized by dask.worker or dask.scheduler. */}}
{{- define "cubehub.daskResources" -}}
requests: {cpu: {{ .cpu | quote }}, memory: {{ .memory | quote }}}
limits: {cpu: {{ .cpu | quote }}, memory: {{ .memory | quote }}}
{{- end }}

{{- /*
A Kubernetes quantity ("500m", "2", "4Gi", "1.5G") as a plain number of cores or bytes.
Fails with the offending value when it is not a quantity.
Usage: include "cubehub.quantity" (list "batch.resources.limits.cpu" "500m")
*/}}
{{- define "cubehub.quantity" -}}
{{- $where := index . 0 }}
{{- $q := toString (index . 1) }}
{{- if not (regexMatch "^[0-9]+(\\.[0-9]+)?(m|k|M|G|T|P|Ki|Mi|Gi|Ti|Pi)?$" $q) }}
{{- fail (printf "%s: %q is not a Kubernetes quantity; write cores like 500m or 2 and bytes like 512Mi or 4Gi" $where $q) }}
{{- end }}
{{- $number := regexFind "^[0-9]+(\\.[0-9]+)?" $q }}
{{- $suffix := trimPrefix $number $q }}
{{- $factors := dict "" 1.0 "m" 0.001 "k" 1e3 "M" 1e6 "G" 1e9 "T" 1e12 "P" 1e15 "Ki" 1024.0 "Mi" 1048576.0 "Gi" 1073741824.0 "Ti" 1099511627776.0 "Pi" 1125899906842624.0 }}
{{- mulf (float64 $number) (get $factors $suffix) }}
{{- end }}

{{- /*
Fails when a limit is below its request. Takes (list "where" low high), "" meaning unset.
*/}}
{{- define "cubehub.checkOrder" -}}
{{- $where := index . 0 }}
{{- $low := index . 1 }}
{{- $high := index . 2 }}
{{- if and (not (kindIs "invalid" $low)) (not (kindIs "invalid" $high)) (ne (toString $low) "") (ne (toString $high) "") }}
{{- $l := include "cubehub.quantity" (list $where $low) | float64 }}
{{- $h := include "cubehub.quantity" (list $where $high) | float64 }}
{{- if lt $h $l }}
{{- fail (printf "%s: the limit %v is below the request %v; raise the limit or lower the request" $where $high $low) }}
{{- end }}
{{- end }}
{{- end }}

{{- /* Checks a Kubernetes resources block {requests, limits}. Takes (list "where" resources). */}}
{{- define "cubehub.checkResources" -}}
{{- $where := index . 0 }}
{{- $res := index . 1 | default dict }}
{{- $req := $res.requests | default dict }}
{{- $lim := $res.limits | default dict }}
{{- range $key := list "cpu" "memory" }}
{{- include "cubehub.checkOrder" (list (printf "%s.limits.%s" $where $key) (get $req $key) (get $lim $key)) }}
{{- end }}
{{- end }}

{{- /*
Install-time checks of what values.schema.json cannot say. Each message names the key and the fix.
*/}}
{{- define "cubehub.validate" -}}
{{- $v := .Values }}

{{- /* Workload identity needs the cloud identity it maps to. */}}
{{- $wi := $v.workloadIdentity }}
{{- if and (eq $wi.provider "aws") (not $wi.aws.roleArn) }}
{{- fail "workloadIdentity.provider is aws but workloadIdentity.aws.roleArn is empty: set the IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)" }}
{{- end }}
{{- if and (eq $wi.provider "gcp") (not $wi.gcp.serviceAccount) }}
{{- fail "workloadIdentity.provider is gcp but workloadIdentity.gcp.serviceAccount is empty: set the Google service account email" }}
{{- end }}
{{- if and (eq $wi.provider "azure") (not $wi.azure.clientId) }}
{{- fail "workloadIdentity.provider is azure but workloadIdentity.azure.clientId is empty: set the managed identity's client ID" }}
{{- end }}

{{- /* Credentials go by reference only. */}}
{{- range $name, $_ := $v.objectStore.env }}
{{- if regexMatch (include "cubehub.secretNamePattern" $) $name }}
{{- fail (printf "objectStore.env.%s looks like a credential: put it in a Secret and set objectStore.existingSecret to its name (or use workloadIdentity)" $name) }}
{{- end }}
{{- end }}

{{- if gt (int $v.dask.adaptive.minimum) (int $v.dask.adaptive.maximum) }}
{{- fail (printf "dask.adaptive.minimum (%v) is above dask.adaptive.maximum (%v)" $v.dask.adaptive.minimum $v.dask.adaptive.maximum) }}
{{- end }}
{{- range $role := list "worker" "scheduler" }}
{{- $pod := get $v.dask $role }}
{{- range $key := list "cpu" "memory" }}
{{- if le (include "cubehub.quantity" (list (printf "dask.%s.%s" $role $key) (get $pod $key)) | float64) 0.0 }}
{{- fail (printf "dask.%s.%s must be above 0" $role $key) }}
{{- end }}
{{- end }}
{{- end }}
{{- include "cubehub.checkResources" (list "batch.resources" $v.batch.resources) }}

{{- $op := index $v "dask-kubernetes-operator" }}
{{- if $op.enabled }}
{{- include "cubehub.checkResources" (list "dask-kubernetes-operator.resources" $op.resources) }}
{{- end }}

{{- range $key := list "cpu" "memory" }}
{{- include "cubehub.checkOrder" (list (printf "limitRange.max.%s" $key) (get $v.limitRange.default $key) (get $v.limitRange.max $key)) }}
{{- range $role := list "worker" "scheduler" }}
{{- include "cubehub.checkOrder" (list (printf "limitRange.max.%s (for dask.%s.%s)" $key $role $key) (get (get $v.dask $role) $key) (get $v.limitRange.max $key)) }}
{{- end }}
{{- include "cubehub.checkOrder" (list (printf "limitRange.max.%s (for batch.resources.limits.%s)" $key $key) (get $v.batch.resources.limits $key) (get $v.limitRange.max $key)) }}
{{- end }}

{{- /* The restricted profile where batch jobs run (user namespaces get it from the hub). */}}
{{- if $v.podSecurity.requireRestrictedNamespace }}
{{- include "cubehub.checkRestrictedNamespace" (dict "name" .Release.Namespace "namespace" (lookup "v1" "Namespace" "" .Release.Namespace)) }}
{{- end }}

{{- $jh := $v.jupyterhub }}
{{- if $jh.enabled }}
{{- /* Anyone may log in with the dummy authenticator: only with an explicit opt-in. */}}
{{- $auth := dig "hub" "config" "JupyterHub" "authenticator_class" "dummy" $jh }}
{{- if and (has $auth (list "dummy" "jupyterhub.auth.DummyAuthenticator")) (not $v.authentication.allowDummy) }}
{{- fail "jupyterhub.hub.config.JupyterHub.authenticator_class is \"dummy\" (the JupyterHub chart's default): anyone could log in as anyone. Configure a real authenticator (docs/deploy.md, step 5), or set authentication.allowDummy=true for a throw-away test install" }}
{{- end }}
{{- /* Notebooks in the user namespaces must reach the hub through its NetworkPolicy. */}}
{{- if and $jh.hub.networkPolicy.enabled (ne $jh.hub.networkPolicy.interNamespaceAccessLabels "accept") }}
{{- fail "jupyterhub.hub.networkPolicy.interNamespaceAccessLabels must be \"accept\": notebooks run in the user namespaces and reach the hub from there (keep the chart's value)" }}
{{- end }}
{{- /* Notebook pods pull the image with the same secrets as the Dask pods. */}}
{{- range $v.image.pullSecrets }}
{{- if not (has . ($jh.singleuser.image.pullSecrets | default list)) }}
{{- fail (printf "image.pullSecrets has %s but jupyterhub.singleuser.image.pullSecrets does not: notebooks run the same image, so list the same secrets there" .) }}
{{- end }}
{{- end }}
{{- /* The pre-puller puts the image on the Dask nodes too. */}}
{{- range $role := list "worker" "scheduler" }}
{{- range (get $v.dask $role).tolerations }}
{{- if not (has . ($jh.prePuller.extraTolerations | default list)) }}
{{- fail (printf "dask.%s.tolerations has %s but jupyterhub.prePuller.extraTolerations does not: add it there, so the image is pulled onto the Dask nodes before a cluster needs it" $role (toJson .)) }}
{{- end }}
{{- end }}
{{- end }}
{{- /* One image everywhere: the notebook's image is also its Dask cluster's image. */}}
{{- $su := $jh.singleuser.image }}
{{- if or (ne $su.name $v.image.name) (ne (toString $su.tag) (toString $v.image.tag)) }}
{{- fail (printf "jupyterhub.singleuser.image (%s:%v) differs from image (%s:%v): notebooks, Dask pods and jobs must run one image; set both to the same name and tag" $su.name $su.tag $v.image.name $v.image.tag) }}
{{- end }}
{{- /* The hub must load cubehub's spawner integration. */}}
{{- $hubConfig := include "cubehub.hubConfigName" . }}
{{- $mounted := false }}
{{- range $jh.hub.extraVolumes }}
{{- if and .configMap (eq .configMap.name $hubConfig) }}{{ $mounted = true }}{{ end }}
{{- end }}
{{- $paths := list }}
{{- range $jh.hub.extraVolumeMounts }}{{ $paths = append $paths (.mountPath | trimSuffix "/") }}{{ end }}
{{- if or (not $mounted) (not (has "/usr/local/etc/jupyterhub/jupyterhub_config.d/cubehub_spawner.py" $paths)) (not (has "/usr/local/etc/cubehub" $paths)) }}
{{- fail (printf "jupyterhub.hub.extraVolumes/extraVolumeMounts must mount the ConfigMap %s (cubehub_spawner.py into /usr/local/etc/jupyterhub/jupyterhub_config.d/, the whole ConfigMap at /usr/local/etc/cubehub): keep the entries from the chart's values.yaml when you add your own" $hubConfig) }}
{{- end }}
{{- range $key := list "hub" "proxy.chp" "proxy.traefik" "proxy.secretSync" "scheduling.userScheduler" "scheduling.userPlaceholder" "prePuller" "prePuller.hook" }}
{{- $block := $jh }}
{{- range splitList "." $key }}{{ $block = get $block . }}{{ end }}
{{- include "cubehub.checkResources" (list (printf "jupyterhub.%s.resources" $key) $block.resources) }}
{{- end }}
{{- include "cubehub.checkOrder" (list "jupyterhub.singleuser.cpu.limit" $jh.singleuser.cpu.guarantee $jh.singleuser.cpu.limit) }}
{{- include "cubehub.checkOrder" (list "jupyterhub.singleuser.memory.limit" $jh.singleuser.memory.guarantee $jh.singleuser.memory.limit) }}
{{- range $profile := $jh.singleuser.profileList }}
{{- with $profile.kubespawner_override }}
{{- include "cubehub.checkOrder" (list (printf "jupyterhub.singleuser.profileList[%s].kubespawner_override.cpu_limit" $profile.display_name) .cpu_guarantee .cpu_limit) }}
{{- include "cubehub.checkOrder" (list (printf "jupyterhub.singleuser.profileList[%s].kubespawner_override.mem_limit" $profile.display_name) .mem_guarantee .mem_limit) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{- /*
The pod template for Dask schedulers and workers, as YAML (argument: (list $ serviceAccount)): cubehub's cluster code (and the
DaskJob template) sets `pod` on the pod spec, adds `labels`, and sets `container` on each
container. It makes the pods meet the "restricted" profile, run as the user ServiceAccount
(workload identity), read the same Dask config and get the object-store environment.
*/}}
{{- define "cubehub.daskPodTemplate" -}}
{{- $account := index . 1 }}
{{- with index . 0 }}
labels:
  app.kubernetes.io/name: cubehub
  {{- with include "cubehub.identityPodLabels" . }}
  {{- . | nindent 2 }}
  {{- end }}
pod:
  serviceAccountName: {{ $account }}
  # Dask pods never call the Kubernetes API.
  automountServiceAccountToken: false
  securityContext:
    {{- toYaml .Values.securityContext.pod | nindent 4 }}
  {{- with .Values.image.pullSecrets }}
  imagePullSecrets:
    {{- range . }}
    - name: {{ . }}
    {{- end }}
  {{- end }}
  volumes:
    {{- include "cubehub.configVolumes" . | nindent 4 }}
container:
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  securityContext:
    {{- toYaml .Values.securityContext.container | nindent 4 }}
  envFrom:
    {{- include "cubehub.envFrom" . | nindent 4 }}
  volumeMounts:
    {{- include "cubehub.configVolumeMounts" . | nindent 4 }}
{{- end }}
{{- end }}

{{- /* GKE Workload Identity hands out tokens from the node's metadata server (169.254.169.254:80,
and 169.254.169.252:988 with Dataplane V2); the other providers use public endpoints. */}}
{{- define "cubehub.identityEgress" -}}
{{- if eq .Values.workloadIdentity.provider "gcp" }}
- to:
    - ipBlock: {cidr: 169.254.169.254/32}
  ports:
    - {port: 80, protocol: TCP}
- to:
    - ipBlock: {cidr: 169.254.169.252/32}
  ports:
    - {port: 988, protocol: TCP}
{{- end }}
{{- end }}

{{- /* NetworkPolicy egress rules shared by the policies in networkpolicies.yaml. */}}
{{- /* DNS on any address: clusters differ (kube-dns service, node-local caches). */}}
{{- define "cubehub.dnsEgress" -}}
- ports:
    - {port: 53, protocol: UDP}
    - {port: 53, protocol: TCP}
{{- end }}
{{- define "cubehub.peersEgress" -}}
{{- $rule := . }}
{{- if $rule.peers }}
- to:
    {{- toYaml $rule.peers | nindent 4 }}
  {{- with $rule.ports }}
  ports:
    {{- range . }}
    - {port: {{ . }}, protocol: TCP}
    {{- end }}
  {{- end }}
{{- end }}
{{- end }}
{{- define "cubehub.schedulerEgress" -}}
- to:
    - podSelector:
        matchLabels: {dask.org/component: scheduler}
  ports:
    - {port: 8786, protocol: TCP}
    - {port: 8787, protocol: TCP}
{{- end }}

{{- /* Batch pieces, shared by CronJob runs and DaskJob runners. Arguments: (list $ name template). */}}
{{- define "cubehub.runnerLabels" -}}
{{- $ := index . 0 }}
app.kubernetes.io/name: cubehub
app.kubernetes.io/instance: {{ $.Release.Name }}
app.kubernetes.io/component: batch
cubehub.io/job: {{ index . 1 }}
{{- with include "cubehub.identityPodLabels" $ }}
{{- . }}
{{- end }}
{{- end }}

{{- define "cubehub.runnerPodSpec" -}}
{{- $ := index . 0 }}
{{- $template := index . 2 }}
serviceAccountName: {{ $template.pod.serviceAccountName }}
securityContext:
  {{- toYaml $template.pod.securityContext | nindent 2 }}
{{- with $template.pod.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $.Values.batch.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $.Values.batch.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
volumes:
  {{- toYaml $template.pod.volumes | nindent 2 }}
  - name: jobs
    configMap:
      name: {{ include "cubehub.jobsConfigName" $ }}
{{- end }}

{{- define "cubehub.runnerContainer" -}}
{{- $ := index . 0 }}
{{- $name := index . 1 }}
{{- $template := index . 2 }}
name: cubehub
image: {{ include "cubehub.image" $ }}
imagePullPolicy: {{ $template.container.imagePullPolicy }}
{{- /* args, not command: the image's entrypoint (tini) stays PID 1 and forwards signals. */}}
args: [cubehub, run, {{ printf "%s/%s.yaml" (include "cubehub.jobsDir" $) $name }}]
resources:
  {{- toYaml $.Values.batch.resources | nindent 2 }}
securityContext:
  {{- toYaml $template.container.securityContext | nindent 2 }}
envFrom:
  {{- toYaml $template.container.envFrom | nindent 2 }}
volumeMounts:
  {{- toYaml $template.container.volumeMounts | nindent 2 }}
  - name: jobs
    mountPath: {{ include "cubehub.jobsDir" $ }}
    readOnly: true
{{- end }}

{{- /* A DaskJob's scheduler or worker pod spec (without containers). Arguments:
(list $ template dask.scheduler|dask.worker). */}}
{{- define "cubehub.daskPodSpec" -}}
{{- $template := index . 1 }}
{{- $role := index . 2 }}
{{- toYaml $template.pod }}
{{- with $role.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $role.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{- /*
Fails unless the namespace enforces the "restricted" Pod Security Standard. Takes
(dict "name" NAME "namespace" (lookup "v1" "Namespace" "" NAME)): `helm template` and
`--dry-run=client` see no cluster (an empty lookup) and skip the check.
*/}}
{{- define "cubehub.checkRestrictedNamespace" -}}
{{- with .namespace }}
{{- if ne (dig "metadata" "labels" "pod-security.kubernetes.io/enforce" "" .) "restricted" }}
{{- fail (printf "namespace %s does not enforce the restricted Pod Security Standard, which the pods users create through the Dask operator must meet: run `kubectl label namespace %s pod-security.kubernetes.io/enforce=restricted` and install again (or set podSecurity.requireRestrictedNamespace=false where another admission controller enforces it)" $.name $.name) }}
{{- end }}
{{- end }}
{{- end }}

{{- /*
Egress rules to the Kubernetes API server: networkPolicy.kubeApiServer.peers if set, else each
endpoint of the "kubernetes" Service. Takes (dict "rule" networkPolicy.kubeApiServer "slices"
(lookup "discovery.k8s.io/v1" "EndpointSlice" "default" "")); renders nothing when neither is
known (`helm template`).
*/}}
{{- define "cubehub.apiServerEgress" -}}
{{- if .rule.peers }}
{{- include "cubehub.peersEgress" .rule }}
{{- else }}
{{- range (.slices.items | default list) }}
{{- if eq (dig "metadata" "labels" "kubernetes.io/service-name" "" .) "kubernetes" }}
{{- $ports := .ports | default list }}
{{- range .endpoints }}
{{- range .addresses }}
- to:
    - ipBlock: {cidr: {{ . }}/{{ if contains ":" . }}128{{ else }}32{{ end }}}
  {{- with $ports }}
  ports:
    {{- range . }}
    - {port: {{ .port }}, protocol: TCP}
    {{- end }}
  {{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{- /* The API server egress of this install (override or discovered). */}}
{{- define "cubehub.kubeApiEgress" -}}
{{- include "cubehub.apiServerEgress" (dict "rule" .Values.networkPolicy.kubeApiServer "slices" (lookup "discovery.k8s.io/v1" "EndpointSlice" "default" "")) }}
{{- end }}

{{- /* Annotations of the cubehub ServiceAccounts: serviceAccount.annotations and workload identity. */}}
{{- define "cubehub.serviceAccountAnnotations" -}}
{{- $wi := .Values.workloadIdentity }}
{{- $annotations := deepCopy .Values.serviceAccount.annotations }}
{{- if eq $wi.provider "aws" }}
{{- $_ := set $annotations "eks.amazonaws.com/role-arn" $wi.aws.roleArn }}
{{- else if eq $wi.provider "gcp" }}
{{- $_ := set $annotations "iam.gke.io/gcp-service-account" $wi.gcp.serviceAccount }}
{{- else if eq $wi.provider "azure" }}
{{- $_ := set $annotations "azure.workload.identity/client-id" $wi.azure.clientId }}
{{- end }}
{{- with $annotations }}
{{- toYaml . }}
{{- end }}
{{- end }}

{{- /* The Dask defaults file (cubehub.yaml) of every cubehub pod. */}}
{{- define "cubehub.daskDefaults" -}}
{{- $d := .Values.dask }}
cubehub:
  cluster:
    backend: kubernetes
    address: null
    kubernetes:
      # null: a notebook's clusters run the notebook's own image ($JUPYTER_IMAGE_SPEC);
      # batch jobs set DASK_CUBEHUB__CLUSTER__KUBERNETES__IMAGE.
      image: null
      namespace: null
      adaptive: {minimum: {{ $d.adaptive.minimum }}, maximum: {{ $d.adaptive.maximum }}}
      idle_timeout: {{ $d.idleTimeout }}
      {{- range $role := list "worker" "scheduler" }}
      {{- $pod := get $d $role }}
      {{ $role }}:
        cpu: {{ $pod.cpu | quote }}
        memory: {{ $pod.memory | quote }}
        node_selector: {{ $pod.nodeSelector | toJson }}
        tolerations: {{ $pod.tolerations | toJson }}
      {{- end }}
  gdal: {{ $d.gdal | toJson }}
  versions: {on_mismatch: {{ $d.onVersionMismatch }}}
{{- end }}

{{- /*
What the hub puts into each user namespace before every spawn (files/hub/cubehub_spawner.py):
the user's ServiceAccount and its RoleBinding, the quota, the limits, the NetworkPolicies and the
Dask configuration. "{namespace}" stands for the user namespace; the hub fills it in.
*/}}
{{- define "cubehub.userNamespaceObjects" -}}
{{- $np := .Values.networkPolicy }}
{{- $q := .Values.users.quota }}
- apiVersion: v1
  kind: ServiceAccount
  metadata:
    name: {{ include "cubehub.userServiceAccount" . }}
    labels: {app.kubernetes.io/name: cubehub, app.kubernetes.io/component: user}
    {{- with include "cubehub.serviceAccountAnnotations" . }}
    annotations:
      {{- . | nindent 6 }}
    {{- end }}
- apiVersion: rbac.authorization.k8s.io/v1
  kind: RoleBinding
  metadata:
    name: {{ include "cubehub.userServiceAccount" . }}
    labels: {app.kubernetes.io/name: cubehub, app.kubernetes.io/component: user}
  roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: {{ include "cubehub.userClusterRole" . }}}
  subjects:
    - {kind: ServiceAccount, name: {{ include "cubehub.userServiceAccount" . }}, namespace: "{namespace}"}
- apiVersion: v1
  kind: ResourceQuota
  metadata:
    name: cubehub-user
    labels: {app.kubernetes.io/name: cubehub, app.kubernetes.io/component: user}
  spec:
    hard:
      requests.cpu: {{ $q.cpu | quote }}
      limits.cpu: {{ $q.cpu | quote }}
      requests.memory: {{ $q.memory | quote }}
      limits.memory: {{ $q.memory | quote }}
      pods: {{ $q.pods | quote }}
      persistentvolumeclaims: {{ $q.persistentVolumeClaims | quote }}
      count/daskclusters.kubernetes.dask.org: {{ $q.daskClusters | quote }}
      count/daskjobs.kubernetes.dask.org: {{ $q.daskClusters | quote }}
{{- if .Values.limitRange.enabled }}
- apiVersion: v1
  kind: LimitRange
  metadata:
    name: cubehub-defaults
    labels: {app.kubernetes.io/name: cubehub, app.kubernetes.io/component: user}
  spec:
    {{- include "cubehub.limitRangeSpec" . | nindent 4 }}
{{- end }}
- apiVersion: v1
  kind: ConfigMap
  metadata:
    name: {{ include "cubehub.daskConfigName" . }}
    labels: {app.kubernetes.io/name: cubehub, app.kubernetes.io/component: dask}
  data:
    cubehub.yaml: |
      {{- include "cubehub.daskDefaults" . | nindent 6 }}
    cubehub-notebook.yaml: |
      distributed:
        dashboard:
          link: {{ .Values.dask.dashboardLink | quote }}
    dask-pod.yaml: |
      {{- include "cubehub.daskPodTemplate" (list . (include "cubehub.userServiceAccount" .)) | nindent 6 }}
- apiVersion: v1
  kind: ConfigMap
  metadata:
    name: {{ include "cubehub.envConfigName" . }}
    labels: {app.kubernetes.io/name: cubehub, app.kubernetes.io/component: object-store}
  {{- with .Values.objectStore.env }}
  data:
    {{- range $name, $value := . }}
    {{ $name }}: {{ $value | toString | quote }}
    {{- end }}
  {{- end }}
{{- if $np.enabled }}
- apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata:
    name: cubehub-notebook
    labels: {app.kubernetes.io/name: cubehub, app.kubernetes.io/component: notebook}
  spec:
    podSelector:
      matchLabels: {component: singleuser-server}
    policyTypes: [Ingress, Egress]
    ingress:
      # The proxy forwards the user's requests, the hub checks the server.
      - from:
          - namespaceSelector:
              matchLabels: {kubernetes.io/metadata.name: {{ .Release.Namespace }}}
            podSelector:
              matchLabels: {hub.jupyter.org/network-access-singleuser: "true"}
        ports:
          - {port: 8888, protocol: TCP}
    egress:
      - to:
          - namespaceSelector:
              matchLabels: {kubernetes.io/metadata.name: {{ .Release.Namespace }}}
            podSelector:
              matchLabels: {component: hub}
        ports:
          - {port: 8081, protocol: TCP}
      {{- include "cubehub.schedulerEgress" . | nindent 6 }}
      {{- include "cubehub.dnsEgress" . | nindent 6 }}
      {{- include "cubehub.kubeApiEgress" . | nindent 6 }}
      {{- include "cubehub.identityEgress" . | nindent 6 }}
      # Public addresses (STAC APIs, object stores, packages), as JupyterHub's own policy allows.
      - to:
          - ipBlock:
              cidr: 0.0.0.0/0
              except: [10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, 169.254.0.0/16, 100.64.0.0/10]
- apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata:
    name: cubehub-dask
    labels: {app.kubernetes.io/name: cubehub, app.kubernetes.io/component: dask}
  spec:
    {{- include "cubehub.daskPolicySpec" . | nindent 4 }}
- apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata:
    name: cubehub-scheduler
    labels: {app.kubernetes.io/name: cubehub, app.kubernetes.io/component: dask}
  spec:
    # The namespace's notebooks drive its clusters and show their dashboards.
    podSelector:
      matchLabels: {dask.org/component: scheduler}
    policyTypes: [Ingress]
    ingress:
      - from:
          - podSelector:
              matchLabels: {component: singleuser-server}
        ports:
          - {port: 8786, protocol: TCP}
          - {port: 8787, protocol: TCP}
{{- end }}
{{- end }}

{{- /* The LimitRange spec of every cubehub namespace. */}}
{{- define "cubehub.limitRangeSpec" -}}
{{- $lr := .Values.limitRange }}
limits:
  - type: Container
    default:
      {{- toYaml $lr.default | nindent 6 }}
    defaultRequest:
      {{- toYaml $lr.defaultRequest | nindent 6 }}
    max:
      {{- toYaml $lr.max | nindent 6 }}
{{- end }}

{{- /* Dask schedulers, workers and job runners of one namespace: among themselves (any port:
workers listen on random ones) and with the operator; out to DNS and the object store. */}}
{{- define "cubehub.daskPolicySpec" -}}
{{- $np := .Values.networkPolicy }}
podSelector:
  matchExpressions:
    - {key: dask.org/component, operator: In, values: [scheduler, worker, job-runner]}
policyTypes: [Ingress, Egress]
ingress:
  - from:
      - podSelector:
          matchExpressions:
            - {key: dask.org/component, operator: In, values: [scheduler, worker, job-runner]}
  # The operator scales, retires workers and checks idleness through the scheduler's ports.
  - from:
      - namespaceSelector:
          matchLabels: {kubernetes.io/metadata.name: {{ $np.operatorNamespace | default .Release.Namespace }}}
        podSelector:
          matchLabels: {app.kubernetes.io/name: dask-kubernetes-operator}
    ports:
      - {port: 8786, protocol: TCP}
      - {port: 8787, protocol: TCP}
egress:
  - to:
      - podSelector:
          matchExpressions:
            - {key: dask.org/component, operator: In, values: [scheduler, worker, job-runner]}
  {{- include "cubehub.dnsEgress" . | nindent 2 }}
  {{- include "cubehub.peersEgress" $np.objectStore | nindent 2 }}
  {{- include "cubehub.identityEgress" . | nindent 2 }}
{{- end }}
