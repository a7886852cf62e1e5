# One IAM role per component, each trusted only by that component's Kubernetes service account and allowed only
# the bucket prefixes it uses: Flink writes the lake and its own state, Trino reads and writes the lake (CTAS,
# maintenance), Ray (training, serving, batch forecasts) reads the lake, writes forecasts and MLflow artifacts,
# MLflow's server serves the artifacts.

locals {
  irsa_prefixes = {
    flink  = [var.prefixes.warehouse, var.prefixes.flink_state]
    trino  = [var.prefixes.warehouse]
    ray    = [var.prefixes.warehouse, var.prefixes.mlflow_artifacts]
    mlflow = [var.prefixes.mlflow_artifacts]
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
  for_each = local.irsa_prefixes

  name = "${var.name}-${each.key}"

  policies = {
    s3 = aws_iam_policy.component_s3[each.key].arn
  }

  oidc_providers = {
    main = {
      provider_arn               = module.eks.oidc_provider_arn
      namespace_service_accounts = ["${var.namespace}:${var.service_accounts[each.key]}"]
    }
  }

  tags = local.tags
}
