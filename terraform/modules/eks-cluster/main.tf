# EKS for ridecast: a VPC (private subnets for nodes, RDS and MSK), an EKS cluster with managed node groups and
# IRSA, the S3 warehouse bucket, per-component IAM roles for service accounts, and optionally RDS PostgreSQL
# (the Iceberg JDBC catalog + MLflow's store) and MSK (Kafka). Community modules do the heavy lifting, pinned.

data "aws_region" "current" {}

locals {
  # the zones are named, not looked up: a zone AWS adds later cannot silently change the subnet layout
  azs = var.availability_zones
  # /16 split into /20s: private (nodes), public (NAT, load balancers), database (RDS, MSK)
  private_subnets  = [for i in range(length(local.azs)) : cidrsubnet(var.vpc_cidr, 4, i)]
  public_subnets   = [for i in range(length(local.azs)) : cidrsubnet(var.vpc_cidr, 4, i + 4)]
  database_subnets = [for i in range(length(local.azs)) : cidrsubnet(var.vpc_cidr, 4, i + 8)]
  tags             = merge(var.tags, { "app.kubernetes.io/part-of" = "ridecast", "ridecast/cluster" = var.name })
}

module "vpc" {
  source  = "terraform-aws-modules/vpc/aws"
  version = "6.0.1"

  name = var.name
  cidr = var.vpc_cidr
  azs  = local.azs

  private_subnets  = local.private_subnets
  public_subnets   = local.public_subnets
  database_subnets = local.database_subnets

  create_database_subnet_group = true
  enable_nat_gateway           = true
  single_nat_gateway           = var.single_nat_gateway
  enable_dns_hostnames         = true

  # traffic of the whole VPC to CloudWatch Logs
  enable_flow_log                      = var.enable_flow_log
  create_flow_log_cloudwatch_log_group = var.enable_flow_log
  create_flow_log_cloudwatch_iam_role  = var.enable_flow_log

  public_subnet_tags  = { "kubernetes.io/role/elb" = "1" }
  private_subnet_tags = { "kubernetes.io/role/internal-elb" = "1" }

  tags = local.tags
}

module "eks" {
  source  = "terraform-aws-modules/eks/aws"
  version = "21.1.0"

  name               = var.name
  kubernetes_version = var.kubernetes_version

  vpc_id     = module.vpc.vpc_id
  subnet_ids = module.vpc.private_subnets

  endpoint_public_access       = length(var.api_public_access_cidrs) > 0
  endpoint_public_access_cidrs = var.api_public_access_cidrs
  endpoint_private_access      = true

  # IRSA: the OIDC provider the service-account roles below trust
  enable_irsa = true

  # whoever runs the first apply administers the cluster; CI's role is added by access entry below
  enable_cluster_creator_admin_permissions = true
  access_entries                           = local.access_entries

  addons = {
    coredns                = {}
    kube-proxy             = {}
    vpc-cni                = { before_compute = true }
    eks-pod-identity-agent = { before_compute = true }
    aws-ebs-csi-driver = {
      # Strimzi's and PostgreSQL's volumes (if in-cluster), Prometheus' storage
      service_account_role_arn = module.ebs_csi_irsa.arn
    }
  }

  eks_managed_node_groups = {
    for name, group in var.node_groups : name => {
      ami_type       = group.ami_type
      instance_types = group.instance_types
      capacity_type  = group.capacity_type
      min_size       = group.min_size
      max_size       = group.max_size
      desired_size   = group.desired_size
      labels         = merge(group.labels, { "ridecast/node-group" = name })
      taints         = group.taints
      # IMDSv2 only, one hop: pods cannot borrow the node's role; they get theirs from IRSA
      metadata_options = {
        http_endpoint               = "enabled"
        http_tokens                 = "required"
        http_put_response_hop_limit = 1
      }
    }
  }

  tags = local.tags
}

locals {
  access_entries = var.deployer_role_arn == null ? {} : {
    ci-deployer = {
      principal_arn = var.deployer_role_arn
      # the namespaced Role of k8s/base/rbac.yaml binds this group
      kubernetes_groups = ["ridecast:deployers"]
      policy_associations = var.deployer_is_cluster_admin ? {
        admin = {
          policy_arn   = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"
          access_scope = { type = "cluster" }
        }
      } : {}
    }
  }
}

module "ebs_csi_irsa" {
  source  = "terraform-aws-modules/iam/aws//modules/iam-role-for-service-accounts"
  version = "6.2.1"

  name                  = "${var.name}-ebs-csi"
  attach_ebs_csi_policy = true

  oidc_providers = {
    main = {
      provider_arn               = module.eks.oidc_provider_arn
      namespace_service_accounts = ["kube-system:ebs-csi-controller-sa"]
    }
  }

  tags = local.tags
}
