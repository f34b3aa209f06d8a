output "service_name" {
  description = "Service in front of the servers (port 8080, OpenAI-compatible API)."
  value       = kubernetes_service_v1.server.metadata[0].name
}

output "service_url" {
  description = "In-cluster base URL of the API."
  value       = "http://${kubernetes_service_v1.server.metadata[0].name}.${var.namespace}.svc:8080"
}

output "deployment_name" {
  description = "The server Deployment."
  value       = kubernetes_deployment_v1.server.metadata[0].name
}
