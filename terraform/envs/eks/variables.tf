variable "region" {
  description = "AWS region of the cluster and the bucket."
  type        = string
  default     = "eu-west-1"

  validation {
    condition     = can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]$", var.region))
    error_message = "region must be an AWS region name such as eu-west-1."
  }
}

variable "availability_zones" {
  description = "Zones of the subnets; null = the region's zones a, b and c."
  type        = list(string)
  default     = null
}

variable "cluster_name" {
  description = "EKS cluster name (and prefix of the AWS resources)."
  type        = string
  default     = "ridecast"
}

variable "kubernetes_version" {
  description = "EKS Kubernetes minor version."
  type        = string
  default     = "1.33"
}

variable "api_public_access_cidrs" {
  description = "CIDRs allowed to the public API endpoint (your office, the CI runners' egress); empty = private only."
  type        = list(string)
  default     = []
}

variable "node_groups" {
  description = "EKS managed node groups, as modules/eks-cluster's node_groups; null = its default general group."
  type        = any
  default     = null
}

variable "deployer_role_arn" {
  description = "IAM role of the deploy workflow (GitHub OIDC); gets an EKS access entry. null = none."
  type        = string
  default     = null
}

variable "warehouse_bucket_name" {
  description = "Globally unique S3 bucket name for the warehouse, Flink state and MLflow artifacts."
  type        = string
}

variable "enable_rds" {
  description = "RDS PostgreSQL for the catalog and MLflow instead of the in-cluster PostgreSQL."
  type        = bool
  default     = true
}

variable "enable_msk" {
  description = "Amazon MSK instead of Strimzi Kafka in-cluster."
  type        = bool
  default     = false
}

variable "image_repositories" {
  description = "Repositories of the images ({app = ..., flink = ...}); empty = the platform module's GHCR defaults."
  type        = map(string)
  default     = {}
}

variable "image_tag" {
  description = "Tag of both images: the commit SHA the images workflow pushed."
  type        = string
}

variable "extra_values" {
  description = "Further ridecast chart values, merged after values-eks.yaml and the wiring."
  type        = any
  default     = {}
}
