variable "chart_path" {
  description = "Path of the ridecast Helm chart (charts/ridecast in this repository)."
  type        = string

  validation {
    condition     = fileexists("${var.chart_path}/Chart.yaml")
    error_message = "chart_path must be a Helm chart directory (with Chart.yaml)."
  }
}

variable "values_files" {
  description = "The environment's values files, in order (e.g. charts/ridecast/values-kind.yaml or values-eks.yaml)."
  type        = list(string)

  validation {
    condition     = alltrue([for f in var.values_files : fileexists(f)])
    error_message = "Every values file must exist."
  }
}

variable "namespace_manifest_path" {
  description = "k8s/base/namespace.yaml: the namespace (name and Pod Security labels) the release goes into."
  type        = string

  validation {
    condition     = fileexists(var.namespace_manifest_path)
    error_message = "namespace_manifest_path must point to k8s/base/namespace.yaml."
  }
}

variable "release_name" {
  description = "Helm release name of ridecast (Service names derive from it: <release>-serve, <release>-trino)."
  type        = string
  default     = "ridecast"

  validation {
    condition     = can(regex("^[a-z]([-a-z0-9]{0,28}[a-z0-9])?$", var.release_name))
    error_message = "release_name must be a DNS label of at most 30 characters."
  }
}

variable "release_timeout_s" {
  description = "Seconds Helm waits for the ridecast release's workloads to become ready."
  type        = number
  default     = 1200

  validation {
    condition     = var.release_timeout_s >= 60
    error_message = "release_timeout_s must be at least 60."
  }
}

variable "images" {
  description = "The two ridecast images (k8s/images/*) and their tag: the commit SHA the images workflow pushed."
  type = object({
    app_repository   = optional(string, "ghcr.io/ridecast/ridecast-app")
    flink_repository = optional(string, "ghcr.io/ridecast/ridecast-flink")
    tag              = string
  })

  validation {
    condition     = var.images.tag != "latest" && can(regex("^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$", var.images.tag))
    error_message = "images.tag must be a valid, pinned image tag (not \"latest\")."
  }
}

variable "versions" {
  description = "Pinned Helm chart versions of the operators."
  type = object({
    cert_manager          = optional(string, "v1.18.2")
    flink_operator        = optional(string, "1.15.0")
    strimzi               = optional(string, "1.2.0")
    kuberay               = optional(string, "1.7.0")
    kube_prometheus_stack = optional(string, "88.2.0")
  })
  default = {}
}

variable "install_strimzi" {
  description = "Install the Strimzi operator (Kafka in-cluster). false when an external Kafka such as MSK is used."
  type        = bool
  default     = true
}

variable "install_monitoring" {
  description = "Install kube-prometheus-stack (Prometheus, Alertmanager, Grafana) for the chart's ServiceMonitors, rules and dashboards."
  type        = bool
  default     = true
}

variable "prometheus_retention" {
  description = "How long Prometheus keeps samples."
  type        = string
  default     = "7d"

  validation {
    condition     = can(regex("^[0-9]+(h|d|w)$", var.prometheus_retention))
    error_message = "prometheus_retention is a duration such as 12h, 7d or 2w."
  }
}

variable "object_storage" {
  description = "S3 bucket of the warehouse (EKS); null keeps the values file's object storage (MinIO on kind)."
  type = object({
    bucket           = string
    region           = string
    warehouse_prefix = optional(string, "warehouse")
  })
  default = null
}

variable "workload_role_arn" {
  description = "IRSA role of the chart's data service accounts (serviceAccount.annotations); null = none (kind: MinIO keys)."
  type        = string
  default     = null

  validation {
    condition     = var.workload_role_arn == null || can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:role/.+$", var.workload_role_arn))
    error_message = "workload_role_arn must be an IAM role ARN."
  }
}

variable "external_postgres" {
  description = "External PostgreSQL (RDS) for the catalog and MLflow; null = the chart's in-cluster PostgreSQL."
  type = object({
    host = string
    port = number
  })
  default = null
}

variable "external_postgres_password" {
  description = "Password of external_postgres (stored in the Kubernetes Secret the chart reads)."
  type        = string
  default     = null
  sensitive   = true

  validation {
    condition     = var.external_postgres_password == null || can(regex("^[A-Za-z0-9]{16,}$", var.external_postgres_password))
    error_message = "external_postgres_password must be URL-safe (alphanumeric, 16+ characters): it goes into connection URIs."
  }
}

variable "kafka_bootstrap_servers" {
  description = "External Kafka bootstrap (MSK); null = Strimzi in-cluster."
  type        = string
  default     = null
}

variable "extra_values" {
  description = "Further chart values, merged last (an escape hatch; prefer the values files)."
  type        = any
  default     = {}
}
