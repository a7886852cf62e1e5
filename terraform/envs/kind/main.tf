# kind: the whole platform on one machine (a laptop, or the deploy workflow's runner).
#   cd terraform/envs/kind && terraform init && terraform apply
# Cluster from k8s/kind/cluster.yaml, then the operators and the ridecast release with values-kind.yaml
# (PostgreSQL, MinIO, Strimzi Kafka in-cluster). Images: build them and `kind load docker-image` them first, or
# point image_tag at tags the images workflow pushed to GHCR.

locals {
  repo_root = abspath("${path.module}/../../..")
}

provider "kind" {}

module "cluster" {
  source      = "../../modules/kind-cluster"
  config_path = "${local.repo_root}/k8s/kind/cluster.yaml"
  name        = var.cluster_name
}

provider "helm" {
  kubernetes = {
    host                   = module.cluster.endpoint
    cluster_ca_certificate = module.cluster.cluster_ca_certificate
    client_certificate     = module.cluster.client_certificate
    client_key             = module.cluster.client_key
  }
}

provider "kubernetes" {
  host                   = module.cluster.endpoint
  cluster_ca_certificate = module.cluster.cluster_ca_certificate
  client_certificate     = module.cluster.client_certificate
  client_key             = module.cluster.client_key
}

module "platform" {
  source = "../../modules/platform"

  chart_path              = "${local.repo_root}/charts/ridecast"
  values_files            = ["${local.repo_root}/charts/ridecast/values-kind.yaml"]
  namespace_manifest_path = "${local.repo_root}/k8s/base/namespace.yaml"

  images = {
    app_repository   = lookup(var.image_repositories, "app", null)
    flink_repository = lookup(var.image_repositories, "flink", null)
    tag              = var.image_tag
  }

  install_monitoring = var.install_monitoring
  extra_values       = var.extra_values
}
