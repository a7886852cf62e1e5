variable "name" {
  description = "Cluster name; also the prefix of every AWS resource name this module creates."
  type        = string
  default     = "ridecast"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}[a-z0-9]$", var.name))
    error_message = "name: 3-32 lowercase letters, digits and hyphens, starting with a letter."
  }
}

variable "kubernetes_version" {
  description = "EKS Kubernetes minor version (the offline validation checks manifests against 1.33)."
  type        = string
  default     = "1.33"

  validation {
    condition     = can(regex("^1\\.[0-9]{2}$", var.kubernetes_version))
    error_message = "kubernetes_version is a minor version such as \"1.33\"."
  }
}

variable "vpc_cidr" {
  description = "CIDR of the VPC; split into /20 private, public and database subnets per availability zone."
  type        = string
  default     = "10.40.0.0/16"

  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0)) && tonumber(split("/", var.vpc_cidr)[1]) <= 16
    error_message = "vpc_cidr must be a valid IPv4 CIDR of /16 or larger."
  }
}

variable "availability_zones" {
  description = "Availability zones (names, e.g. eu-west-1a) of the subnets; MSK needs at least as many as brokers."
  type        = list(string)

  validation {
    condition     = length(var.availability_zones) >= 2 && length(var.availability_zones) <= 4 && length(distinct(var.availability_zones)) == length(var.availability_zones)
    error_message = "availability_zones: 2 to 4 distinct zones (EKS needs two; the subnet layout holds four)."
  }
}

variable "single_nat_gateway" {
  description = "One NAT gateway for all zones (cheaper) instead of one per zone (survives a zone outage)."
  type        = bool
  default     = true
}

variable "enable_flow_log" {
  description = "Send the VPC's flow logs to CloudWatch Logs."
  type        = bool
  default     = true
}

variable "api_public_access_cidrs" {
  description = "CIDRs allowed to reach the public API endpoint; empty = private endpoint only (then run Terraform and CI from inside the VPC)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.api_public_access_cidrs : can(cidrhost(c, 0)) && c != "0.0.0.0/0"])
    error_message = "api_public_access_cidrs must be valid CIDRs, and not 0.0.0.0/0."
  }
}

variable "node_groups" {
  description = "EKS managed node groups by name. The default: one general group for operators, Kafka, Trino, Ray and Flink."
  nullable    = false
  type = map(object({
    instance_types = list(string)
    ami_type       = optional(string, "AL2023_x86_64_STANDARD")
    capacity_type  = optional(string, "ON_DEMAND")
    min_size       = number
    max_size       = number
    desired_size   = number
    labels         = optional(map(string), {})
    taints         = optional(map(object({ key = string, value = optional(string), effect = string })), {})
  }))
  default = {
    general = {
      instance_types = ["m6i.xlarge"]
      min_size       = 2
      max_size       = 6
      desired_size   = 3
    }
  }

  validation {
    condition     = alltrue([for g in values(var.node_groups) : g.min_size <= g.desired_size && g.desired_size <= g.max_size])
    error_message = "Each node group needs min_size <= desired_size <= max_size."
  }

  validation {
    condition     = alltrue([for g in values(var.node_groups) : contains(["ON_DEMAND", "SPOT"], g.capacity_type)])
    error_message = "capacity_type is ON_DEMAND or SPOT."
  }
}

variable "deployer_role_arn" {
  description = "IAM role the deploy workflow assumes through GitHub OIDC; gets an EKS access entry (group ridecast:deployers). null = none."
  type        = string
  default     = null

  validation {
    condition     = var.deployer_role_arn == null || can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:role/.+$", var.deployer_role_arn))
    error_message = "deployer_role_arn must be an IAM role ARN."
  }
}

variable "deployer_is_cluster_admin" {
  description = "Give the deployer role cluster admin (it then runs `terraform apply` of the operators); false = only the namespaced Role of k8s/base/rbac.yaml (helm upgrades of ridecast)."
  type        = bool
  default     = true
}

variable "warehouse_bucket_name" {
  description = "Globally unique name of the S3 bucket for the Iceberg warehouse, Flink state and MLflow artifacts."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.warehouse_bucket_name))
    error_message = "warehouse_bucket_name must be a valid S3 bucket name (3-63 lowercase letters, digits, dots, hyphens)."
  }
}

variable "warehouse_kms_key_arn" {
  description = "Customer-managed KMS key for the bucket; null = the AWS-managed aws/s3 key."
  type        = string
  default     = null
}

variable "warehouse_force_destroy" {
  description = "Allow `terraform destroy` to delete a non-empty bucket (test clusters only)."
  type        = bool
  default     = false
}

variable "noncurrent_version_days" {
  description = "Days S3 keeps an object's previous versions (recovery window after deletes and overwrites)."
  type        = number
  default     = 30

  validation {
    condition     = var.noncurrent_version_days >= 1
    error_message = "noncurrent_version_days must be at least 1."
  }
}

variable "prefixes" {
  description = "Bucket prefixes per use; must match the chart's values (catalog.warehousePrefix, flink.statePrefix, mlflow artifacts)."
  type = object({
    warehouse        = optional(string, "warehouse")
    flink_state      = optional(string, "flink")
    mlflow_artifacts = optional(string, "mlflow")
  })
  default = {}
}

variable "namespace" {
  description = "Kubernetes namespace of the ridecast release (the IRSA roles trust service accounts there only)."
  type        = string
  default     = "ridecast"
}

variable "irsa_roles" {
  description = "IRSA roles by name: the service accounts (in var.namespace) each trusts and the prefixes (keys of var.prefixes) it may use."
  type = map(object({
    service_accounts = list(string)
    prefixes         = list(string)
  }))
  default = {
    workloads = {
      service_accounts = ["ridecast", "ridecast-flink"]
      prefixes         = ["warehouse", "flink_state", "mlflow_artifacts"]
    }
  }

  validation {
    condition     = alltrue([for r in values(var.irsa_roles) : length(r.service_accounts) > 0 && alltrue([for p in r.prefixes : contains(["warehouse", "flink_state", "mlflow_artifacts"], p)])])
    error_message = "Each IRSA role needs service accounts, and prefixes among warehouse, flink_state, mlflow_artifacts."
  }
}

variable "rds" {
  description = "Optional RDS PostgreSQL for the Iceberg JDBC catalog and MLflow (otherwise the chart runs PostgreSQL in-cluster)."
  type = object({
    enabled              = optional(bool, false)
    engine_version       = optional(string, "17.6")
    instance_class       = optional(string, "db.t4g.medium")
    allocated_storage_gb = optional(number, 20)
    multi_az             = optional(bool, true)
  })
  default = {}

  validation {
    condition     = var.rds.allocated_storage_gb >= 20
    error_message = "rds.allocated_storage_gb must be at least 20 (gp3 minimum)."
  }
}

variable "msk" {
  description = "Optional Amazon MSK (otherwise the chart runs Kafka with Strimzi)."
  type = object({
    enabled        = optional(bool, false)
    kafka_version  = optional(string, "3.9.x")
    broker_count   = optional(number, 3)
    instance_type  = optional(string, "kafka.m7g.large")
    volume_size_gb = optional(number, 100)
  })
  default = {}

  validation {
    condition     = var.msk.broker_count >= 2
    error_message = "msk.broker_count must be at least 2 (one per subnet, at least two zones)."
  }
}

variable "tags" {
  description = "Tags added to every AWS resource."
  type        = map(string)
  default     = {}
}
