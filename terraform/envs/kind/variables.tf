variable "cluster_name" {
  description = "kind cluster name; null keeps the name in k8s/kind/cluster.yaml (ridecast)."
  type        = string
  default     = null
}

variable "image_repositories" {
  description = "Repositories of the images ({app = ..., flink = ...}); empty = the platform module's GHCR defaults."
  type        = map(string)
  default     = {}
}

variable "image_tag" {
  description = "Tag of both images: the commit SHA the images workflow built, or the tag given to `kind load`."
  type        = string
}

variable "install_monitoring" {
  description = "Install kube-prometheus-stack (the chart's ServiceMonitors and PrometheusRule need its CRDs)."
  type        = bool
  default     = true
}

variable "extra_values" {
  description = "Further ridecast chart values, merged after values-kind.yaml."
  type        = any
  default     = {}
}
