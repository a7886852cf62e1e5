# EKS: VPC + cluster + S3 + IRSA (+ optional RDS, MSK), then the operators and the ridecast release with
# values-eks.yaml and the wiring from the cluster module's outputs.
#   cd terraform/envs/eks && terraform init && terraform apply -var warehouse_bucket_name=... -var image_tag=...

locals {
  repo_root = abspath("${path.module}/../../..")
}

provider "aws" {
  region = var.region

  default_tags {
    tags = { project = "ridecast", managed-by = "terraform" }
  }
}

module "cluster" {
  source = "../../modules/eks-cluster"

  name                    = var.cluster_name
  kubernetes_version      = var.kubernetes_version
  availability_zones      = var.availability_zones != null ? var.availability_zones : [for z in ["a", "b", "c"] : "${var.region}${z}"]
  api_public_access_cidrs = var.api_public_access_cidrs
  node_groups             = var.node_groups
  deployer_role_arn       = var.deployer_role_arn
  warehouse_bucket_name   = var.warehouse_bucket_name
  rds                     = { enabled = var.enable_rds }
  msk                     = { enabled = var.enable_msk }
}

# Kubernetes credentials come from the caller's AWS identity at apply time (aws eks get-token): no static
# token in the state.
provider "helm" {
  kubernetes = {
    host                   = module.cluster.cluster_endpoint
    cluster_ca_certificate = base64decode(module.cluster.cluster_certificate_authority_data)
    exec = {
      api_version = "client.authentication.k8s.io/v1beta1"
      command     = "aws"
      args        = ["eks", "get-token", "--cluster-name", module.cluster.cluster_name, "--region", var.region]
    }
  }
}

provider "kubernetes" {
  host                   = module.cluster.cluster_endpoint
  cluster_ca_certificate = base64decode(module.cluster.cluster_certificate_authority_data)
  exec {
    api_version = "client.authentication.k8s.io/v1beta1"
    command     = "aws"
    args        = ["eks", "get-token", "--cluster-name", module.cluster.cluster_name, "--region", var.region]
  }
}

module "platform" {
  source = "../../modules/platform"

  chart_path              = "${local.repo_root}/charts/ridecast"
  values_files            = ["${local.repo_root}/charts/ridecast/values-eks.yaml"]
  namespace_manifest_path = "${local.repo_root}/k8s/base/namespace.yaml"

  images = {
    app_repository   = lookup(var.image_repositories, "app", null)
    flink_repository = lookup(var.image_repositories, "flink", null)
    tag              = var.image_tag
  }

  object_storage = {
    bucket           = module.cluster.warehouse_bucket
    region           = var.region
    warehouse_prefix = module.cluster.prefixes.warehouse
  }

  workload_role_arn = module.cluster.irsa_role_arns["workloads"]

  external_postgres          = module.cluster.postgres == null ? null : { host = module.cluster.postgres.host, port = module.cluster.postgres.port }
  external_postgres_password = module.cluster.postgres_password
  kafka_bootstrap_servers    = module.cluster.kafka_bootstrap_servers
  install_strimzi            = !var.enable_msk
  extra_values               = var.extra_values
}
