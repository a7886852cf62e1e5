# IAM roles for Kubernetes service accounts (IRSA), each trusted only by the service accounts it lists and allowed
# only the bucket prefixes it needs. The default matches charts/ridecast as it is: one data service account
# (`ridecast`: Trino, Ray serving/training/CronJobs, MLflow) plus the FlinkDeployment's (`ridecast-flink`), both
# annotated with one role (serviceAccount.annotations). With per-component service accounts the same variable
# splits it, e.g. flink = {flink, warehouse}, trino = {warehouse}, ray = {warehouse, mlflow}, mlflow = {mlflow}.

locals {
  irsa_prefixes = {
    for role, cfg in var.irsa_roles : role => [for use in cfg.prefixes : var.prefixes[use]]
  }
}

data "aws_iam_policy_document" "component_s3" {
  for_each = local.irsa_prefixes

  statement {
    sid       = "ListOwnPrefixes"
    actions   = ["s3:ListBucket", "s3:GetBucketLocation"]
    resources = [aws_s3_bucket.warehouse.arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = flatten([for p in each.value : [p, "${p}/*"]])
    }
  }

  statement {
    sid       = "ReadWriteOwnPrefixes"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]
    resources = [for p in each.value : "${aws_s3_bucket.warehouse.arn}/${p}/*"]
  }

  dynamic "statement" {
    for_each = var.warehouse_kms_key_arn == null ? [] : [var.warehouse_kms_key_arn]
    content {
      sid       = "UseWarehouseKey"
      actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
      resources = [statement.value]
    }
  }
}

resource "aws_iam_policy" "component_s3" {
  for_each = local.irsa_prefixes

  name        = "${var.name}-${each.key}-s3"
  description = "ridecast ${each.key}: its prefixes of the warehouse bucket"
  policy      = data.aws_iam_policy_document.component_s3[each.key].json
  tags        = local.tags
}

module "component_irsa" {
  source   = "terraform-aws-modules/iam/aws//modules/iam-role-for-service-accounts"
  version  = "6.2.1"
  for_each = var.irsa_roles

  name = "${var.name}-${each.key}"

  policies = {
    s3 = aws_iam_policy.component_s3[each.key].arn
  }

  oidc_providers = {
    main = {
      provider_arn               = module.eks.oidc_provider_arn
      namespace_service_accounts = [for sa in each.value.service_accounts : "${var.namespace}:${sa}"]
    }
  }

  tags = local.tags
}
