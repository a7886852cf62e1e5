output "cluster_name" {
  description = "EKS cluster (aws eks update-kubeconfig --name <this>)."
  value       = module.cluster.cluster_name
}

output "warehouse_bucket" {
  description = "S3 bucket of the warehouse."
  value       = module.cluster.warehouse_bucket
}

output "irsa_role_arns" {
  description = "IAM role per component."
  value       = module.cluster.irsa_role_arns
}

output "kafka_bootstrap_servers" {
  description = "MSK bootstrap (null with Strimzi)."
  value       = module.cluster.kafka_bootstrap_servers
}

output "namespace" {
  description = "Namespace of the ridecast release."
  value       = module.platform.namespace
}

output "release_name" {
  description = "Helm release of ridecast."
  value       = module.platform.release_name
}
