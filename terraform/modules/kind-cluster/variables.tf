variable "config_path" {
  description = "Path of the kind cluster config (k8s/kind/cluster.yaml): nodes, node image, host port mappings."
  type        = string

  validation {
    condition     = fileexists(var.config_path)
    error_message = "config_path must point to an existing kind config file (k8s/kind/cluster.yaml)."
  }
}

variable "name" {
  description = "Cluster name; null keeps the name in the config file."
  type        = string
  default     = null

  validation {
    condition     = var.name == null || can(regex("^[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?$", var.name))
    error_message = "name must be a DNS label of at most 32 characters (kind names its node containers after it)."
  }
}
