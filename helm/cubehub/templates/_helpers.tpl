{{- /*
Names, labels and shared pod pieces of the cubehub chart, plus the install-time checks
(cubehub.validate) that values.schema.json cannot express.
*/}}

{{- /* Names are fixed (one release per namespace, like JupyterHub's chart): the JupyterHub
values block refers to some of them literally, and the checks below keep the two in step. */}}
{{- define "cubehub.userServiceAccount" -}}cubehub-user{{- end }}
{{- define "cubehub.daskConfigName" -}}cubehub-dask-config{{- end }}
{{- define "cubehub.envConfigName" -}}cubehub-env{{- end }}
{{- define "cubehub.hubConfigName" -}}cubehub-hub{{- end }}
{{- define "cubehub.jobsConfigName" -}}cubehub-jobs{{- end }}

{{- /* Where the files land inside the pods. Dask reads every YAML file in /etc/dask. */}}
{{- define "cubehub.daskConfigPath" -}}/etc/dask/cubehub.yaml{{- end }}
{{- define "cubehub.podTemplatePath" -}}/etc/cubehub/dask-pod.yaml{{- end }}
{{- define "cubehub.jobsDir" -}}/etc/cubehub/jobs{{- end }}

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
{{- if regexMatch "(?i)(SECRET|PASSWORD|TOKEN|ACCESS_KEY|CREDENTIAL)" $name }}
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

{{- $jh := $v.jupyterhub }}
{{- if $jh.enabled }}
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
{{- range $jh.hub.extraVolumeMounts }}{{ $paths = append $paths .mountPath }}{{ end }}
{{- if or (not $mounted) (not (has "/usr/local/etc/jupyterhub/jupyterhub_config.d/cubehub_spawner.py" $paths)) (not (has "/usr/local/etc/cubehub/hub-settings.json" $paths)) }}
{{- fail (printf "jupyterhub.hub.extraVolumes/extraVolumeMounts must mount the ConfigMap %s (cubehub_spawner.py into /usr/local/etc/jupyterhub/jupyterhub_config.d/, hub-settings.json into /usr/local/etc/cubehub/): keep the entries from the chart's values.yaml when you add your own" $hubConfig) }}
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
The pod template for Dask schedulers and workers, as YAML: cubehub's cluster code (and the
DaskJob template) sets `pod` on the pod spec, adds `labels`, and sets `container` on each
container. It makes the pods meet the "restricted" profile, run as the user ServiceAccount
(workload identity), read the same Dask config and get the object-store environment.
*/}}
{{- define "cubehub.daskPodTemplate" -}}
labels:
  app.kubernetes.io/name: cubehub
  {{- with include "cubehub.identityPodLabels" . }}
  {{- . | nindent 2 }}
  {{- end }}
pod:
  serviceAccountName: {{ include "cubehub.userServiceAccount" . }}
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
command: [cubehub, run, {{ printf "%s/%s.yaml" (include "cubehub.jobsDir" $) $name }}]
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
