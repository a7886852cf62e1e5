{{/*
A Ray node's pod template (head or worker) in the app image, hardened, with the shared RIDECAST_* env:
(dict "ctx" $ "component" "serve" "role" "head"|"worker" "resources" {...} "shmSize" "1Gi" "extraEnv" list "serve" bool)
Ray writes its session files, spill and caches under /tmp (an emptyDir; the app image points RAY_TMPDIR,
XDG_CACHE_HOME and MPLCONFIGDIR there); HOME stays the image's, whose profile KubeRay's login shell reads.
Ray's object store lives in /dev/shm, which a container gets at 64 MiB unless it mounts its own: a memory-backed
emptyDir of `shmSize` (the group's value; it counts against the container's memory limit).
*/}}
{{- define "ridecast.rayPodTemplate" -}}
{{- $ := .ctx -}}
metadata:
  labels:
    {{- include "ridecast.componentLabels" (dict "ctx" $ "component" .component) | nindent 4 }}
    ridecast.io/ray-role: {{ .role }}
spec:
  serviceAccountName: {{ include "ridecast.serviceAccountName" $ }}
  automountServiceAccountToken: false
  securityContext:
    {{- include "ridecast.podSecurityContext" (dict "uid" 1000 "gid" 100) | nindent 4 }}
  {{- with $.Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  containers:
    - name: {{ ternary "ray-head" "ray-worker" (eq .role "head") }}
      image: {{ include "ridecast.image" $.Values.images.app }}
      imagePullPolicy: {{ $.Values.images.app.pullPolicy }}
      securityContext:
        {{- include "ridecast.containerSecurityContext" $ | nindent 8 }}
      envFrom:
        {{- include "ridecast.envFrom" $ | nindent 8 }}
      env:
        {{- include "ridecast.appEnv" $ | nindent 8 }}
        - name: RAY_USAGE_STATS_ENABLED
          value: "0"
        {{- if .serve }}
        # serving.main_loop (serve._deployment.ray_serve_env): requests on the replicas' and the proxy's main loops
        - name: RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD
          value: {{ ternary "0" "1" $.Values.serving.mainLoop | quote }}
        - name: RAY_SERVE_RUN_ROUTER_IN_SEPARATE_LOOP
          value: {{ ternary "0" "1" $.Values.serving.mainLoop | quote }}
        # serving.ingress: Serve's HAProxy ingress on serving.port instead of its Python proxy (Ray forces direct
        # ingress on with it; its config and sockets go to /tmp/haproxy-serve, the tmp emptyDir)
        - name: RAY_SERVE_ENABLE_HA_PROXY
          value: {{ ternary "1" "0" (eq $.Values.serving.ingress "haproxy") | quote }}
        {{- end }}
        {{- with .extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      ports:
        {{- if eq .role "head" }}
        - name: gcs-server
          containerPort: 6379
        - name: dashboard
          containerPort: 8265
        - name: client
          containerPort: 10001
        {{- end }}
        - name: metrics
          containerPort: 8080
        {{- if .serve }}
        - name: serve
          containerPort: {{ $.Values.serving.port }}
        {{- end }}
      readinessProbe:
        exec:
          command: ["bash", "-c", {{ include "ridecast.rayHealthCheck" . | quote }}]
        initialDelaySeconds: 10
        periodSeconds: 5
        timeoutSeconds: 3
        failureThreshold: 10
      livenessProbe:
        exec:
          command: ["bash", "-c", {{ include "ridecast.rayLiveCheck" . | quote }}]
        initialDelaySeconds: 30
        periodSeconds: 5
        timeoutSeconds: 3
        failureThreshold: 120
      resources:
        {{- toYaml .resources | nindent 8 }}
      volumeMounts:
        - name: tmp
          mountPath: /tmp
        - name: shm
          mountPath: /dev/shm
  volumes:
    - name: tmp
      emptyDir:
        sizeLimit: 8Gi
    - name: shm
      emptyDir:
        medium: Memory
        sizeLimit: {{ required "every Ray group needs shmSize (its /dev/shm)" .shmSize }}
{{- end -}}

{{/* KubeRay's own probe commands: the raylet (and on the head the GCS) healthy; serving nodes also proxy-healthy */}}
{{- define "ridecast.rayLiveCheck" -}}
wget -T 2 -q -O- http://localhost:52365/api/local_raylet_healthz | grep success
{{- if eq .role "head" }} && wget -T 2 -q -O- http://localhost:8265/api/gcs_healthz | grep success{{ end }}
{{- end -}}

{{- define "ridecast.rayHealthCheck" -}}
{{ include "ridecast.rayLiveCheck" . }}
{{- if and .serve (ne .role "head") }} && wget -T 2 -q -O- http://localhost:{{ .ctx.Values.serving.port }}/-/healthz | grep success{{ end }}
{{- end -}}

{{/* the autoscaler sidecar, hardened like the rest */}}
{{- define "ridecast.rayAutoscalerOptions" -}}
upscalingMode: Default
idleTimeoutSeconds: 60
imagePullPolicy: IfNotPresent
securityContext:
  {{- include "ridecast.containerSecurityContext" . | nindent 2 }}
resources:
  requests: {cpu: 100m, memory: 256Mi}
  limits: {cpu: 500m, memory: 512Mi}
{{- end -}}
