{{/*
OpenSearch store wiring shared by the StatefulSet and the stateless Deployment.
The connection Secret (stores.opensearch.connectionSecret) holds `url` and,
optionally, `username` + `password` or `apiKey`, and `ca.crt`.
*/}}

{{- define "confluence-operator.opensearch.stateless" -}}
{{- if and .Values.stores.opensearch.enabled (not .Values.stores.embedded.enabled) }}true{{ end -}}
{{- end -}}

{{- define "confluence-operator.opensearch.args" -}}
{{- if .Values.stores.opensearch.enabled }}
- --opensearch-index={{ .Values.stores.opensearch.index }}
{{- if .Values.stores.opensearch.caBundle }}
- --opensearch-ca-file=/etc/confluence-operator-opensearch/ca.crt
{{- end }}
{{- end }}
{{- end -}}

{{- define "confluence-operator.opensearch.env" -}}
{{- if .Values.stores.opensearch.enabled }}
{{- $secret := required "stores.opensearch.connectionSecret is required" .Values.stores.opensearch.connectionSecret }}
- name: OPENSEARCH_URL
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: url
{{- range $env, $key := dict "OPENSEARCH_USERNAME" "username" "OPENSEARCH_PASSWORD" "password" "OPENSEARCH_API_KEY" "apiKey" }}
- name: {{ $env }}
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ $key }}
      optional: true
{{- end }}
{{- end }}
{{- end -}}

{{- define "confluence-operator.opensearch.volumeMounts" -}}
{{- if and .Values.stores.opensearch.enabled .Values.stores.opensearch.caBundle }}
- name: opensearch-ca
  mountPath: /etc/confluence-operator-opensearch
  readOnly: true
{{- end }}
{{- end -}}

{{- define "confluence-operator.opensearch.volumes" -}}
{{- if and .Values.stores.opensearch.enabled .Values.stores.opensearch.caBundle }}
- name: opensearch-ca
  secret:
    secretName: {{ .Values.stores.opensearch.connectionSecret }}
    items:
      - key: ca.crt
        path: ca.crt
{{- end }}
{{- end -}}
