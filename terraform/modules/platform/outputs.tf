output "namespace" {
  description = "Namespace of the ridecast release."
  value       = kubernetes_namespace_v1.ridecast.metadata[0].name
}

output "release_name" {
  description = "Helm release name of ridecast (for `helm test`)."
  value       = helm_release.ridecast.name
}

output "operator_versions" {
  description = "The operator chart versions installed."
  value       = var.versions
}
