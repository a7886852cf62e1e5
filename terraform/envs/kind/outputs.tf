output "cluster_name" {
  description = "The kind cluster's name (for `kind load docker-image --name`)."
  value       = module.cluster.name
}

output "kubeconfig_path" {
  description = "Kubeconfig of the cluster: export KUBECONFIG=<this>."
  value       = module.cluster.kubeconfig_path
}

output "namespace" {
  description = "Namespace of the ridecast release."
  value       = module.platform.namespace
}

output "release_name" {
  description = "Helm release of ridecast (`helm test <release> -n <namespace>`)."
  value       = module.platform.release_name
}
