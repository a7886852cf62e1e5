{{/*
A CronJob running one ridecast command in the app image with the shared configuration:
(dict "ctx" $ "name" "forecast" "schedule" cron "args" (list ...) "serviceAccount" "..." "apiAccess" bool
      "extraEnv" list "volumes" list "volumeMounts" list)
*/}}
{{- define "ridecast.cronJob" -}}
{{- $ := .ctx -}}
{{- $fn := include "ridecast.fullname" $ -}}
apiVersion: batch/v1
kind: CronJob
metadata:
  name: {{ $fn }}-{{ .name }}
  namespace: {{ $.Release.Namespace }}
  labels:
    {{- include "ridecast.componentLabels" (dict "ctx" $ "component" .name) | nindent 4 }}
spec:
  schedule: {{ .schedule | quote }}
  timeZone: {{ $.Values.schedules.timeZone | quote }}
  suspend: {{ $.Values.schedules.suspend }}
  concurrencyPolicy: Forbid
  startingDeadlineSeconds: 300
  successfulJobsHistoryLimit: 3
  failedJobsHistoryLimit: 3
  jobTemplate:
    spec:
      backoffLimit: 2
      activeDeadlineSeconds: {{ .deadline | default 3600 }}
      ttlSecondsAfterFinished: 86400
      template:
        metadata:
          labels:
            {{- include "ridecast.componentLabels" (dict "ctx" $ "component" .name) | nindent 12 }}
        spec:
          restartPolicy: Never
          serviceAccountName: {{ .serviceAccount | default (include "ridecast.serviceAccountName" $) }}
          automountServiceAccountToken: {{ .apiAccess | default false }}
          securityContext:
            {{- include "ridecast.podSecurityContext" (dict "uid" 1000 "gid" 100) | nindent 12 }}
          {{- with $.Values.imagePullSecrets }}
          imagePullSecrets:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          containers:
            - name: {{ .name }}
              image: {{ include "ridecast.image" $.Values.images.app }}
              imagePullPolicy: {{ $.Values.images.app.pullPolicy }}
              command: ["ridecast"]
              args:
                {{- toYaml .args | nindent 16 }}
              securityContext:
                {{- include "ridecast.containerSecurityContext" $ | nindent 16 }}
              envFrom:
                {{- include "ridecast.envFrom" $ | nindent 16 }}
              env:
                {{- include "ridecast.appEnv" $ | nindent 16 }}
                {{- with .extraEnv }}
                {{- toYaml . | nindent 16 }}
                {{- end }}
              resources:
                {{- toYaml $.Values.jobs.resources | nindent 16 }}
              volumeMounts:
                - name: tmp
                  mountPath: /tmp
                {{- with .volumeMounts }}
                {{- toYaml . | nindent 16 }}
                {{- end }}
          volumes:
            - name: tmp
              emptyDir:
                sizeLimit: 2Gi
            {{- with .volumes }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
{{- end -}}
