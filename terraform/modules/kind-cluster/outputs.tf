output "name" {
  description = "The kind cluster's name."
  value       = kind_cluster.this.name
}

output "endpoint" {
  description = "API server URL (127.0.0.1 only)."
  value       = kind_cluster.this.endpoint
}

output "cluster_ca_certificate" {
  description = "PEM CA certificate of the API server."
  value       = kind_cluster.this.cluster_ca_certificate
}

output "client_certificate" {
  description = "PEM client certificate of the cluster admin."
  value       = kind_cluster.this.client_certificate
  sensitive   = true
}

output "client_key" {
  description = "PEM client key of the cluster admin."
  value       = kind_cluster.this.client_key
  sensitive   = true
}

output "kubeconfig_path" {
  description = "Kubeconfig file kind wrote for this cluster."
  value       = kind_cluster.this.kubeconfig_path
}
