output "cluster_name" {
  description = "EKS cluster name."
  value       = module.eks.cluster_name
}

output "cluster_endpoint" {
  description = "EKS API server endpoint."
  value       = module.eks.cluster_endpoint
}

output "cluster_certificate_authority_data" {
  description = "Base64 CA certificate of the API server."
  value       = module.eks.cluster_certificate_authority_data
}

output "oidc_provider_arn" {
  description = "IAM OIDC provider of the cluster (IRSA)."
  value       = module.eks.oidc_provider_arn
}

output "region" {
  description = "AWS region the cluster runs in."
  value       = data.aws_region.current.region
}

output "warehouse_bucket" {
  description = "S3 bucket of the warehouse, Flink state and MLflow artifacts."
  value       = aws_s3_bucket.warehouse.bucket
}

output "prefixes" {
  description = "Bucket prefixes per use (as given)."
  value       = var.prefixes
}

output "irsa_role_arns" {
  description = "IAM role ARN per IRSA role name (default: workloads), for the eks.amazonaws.com/role-arn annotation."
  value       = { for k, m in module.component_irsa : k => m.arn }
}

output "postgres" {
  description = "RDS PostgreSQL connection (null when rds.enabled is false)."
  value = var.rds.enabled ? {
    host     = aws_db_instance.postgres[0].address
    port     = aws_db_instance.postgres[0].port
    database = aws_db_instance.postgres[0].db_name
    username = aws_db_instance.postgres[0].username
  } : null
}

output "postgres_password" {
  description = "RDS master password (for the Kubernetes Secret the chart reads); null without RDS."
  value       = var.rds.enabled ? random_password.postgres[0].result : null
  sensitive   = true
}

output "kafka_bootstrap_servers" {
  description = "MSK bootstrap brokers inside the VPC, plaintext listener (what the chart's Kafka clients speak); null without MSK."
  value       = var.msk.enabled ? aws_msk_cluster.kafka[0].bootstrap_brokers : null
}

output "kafka_bootstrap_servers_tls" {
  description = "MSK bootstrap brokers, TLS listener (for clients configured with security.protocol=SSL); null without MSK."
  value       = var.msk.enabled ? aws_msk_cluster.kafka[0].bootstrap_brokers_tls : null
}
