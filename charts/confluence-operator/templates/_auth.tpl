{{/*
How the search API and /mcp authenticate callers: the same flags for the
StatefulSet and the stateless (OpenSearch) Deployment.
*/}}
{{- define "confluence-operator.auth.args" -}}
- --auth={{ .Values.auth.mode }}
- --auth-audience={{ .Values.auth.audience }}
- --auth-cache-ttl={{ .Values.auth.cacheTTL }}
{{- if eq .Values.auth.mode "oidc" }}
- --oidc-issuer-url={{ required "auth.oidc.issuerURL is required with auth.mode=oidc" .Values.auth.oidc.issuerURL }}
{{- with .Values.auth.oidc.jwksURL }}
- --oidc-jwks-url={{ . }}
{{- end }}
- --oidc-username-claim={{ .Values.auth.oidc.usernameClaim }}
- --oidc-groups-claim={{ .Values.auth.oidc.groupsClaim }}
{{- end }}
{{- if eq .Values.auth.mode "trusted-header" }}
- --trusted-header-listen=0.0.0.0:{{ .Values.auth.trustedHeader.port }}
{{- end }}
{{- end }}
