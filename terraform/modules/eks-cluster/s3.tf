# The lakehouse's object store: Iceberg warehouse, Flink checkpoints/savepoints, MLflow artifacts, one bucket,
# separated by prefix (the chart's objectStorage.bucket + prefixes). Private, encrypted, versioned, TLS only.

resource "aws_s3_bucket" "warehouse" {
  bucket        = var.warehouse_bucket_name
  force_destroy = var.warehouse_force_destroy
  tags          = local.tags
}

resource "aws_s3_bucket_public_access_block" "warehouse" {
  bucket                  = aws_s3_bucket.warehouse.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "warehouse" {
  bucket = aws_s3_bucket.warehouse.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_versioning" "warehouse" {
  bucket = aws_s3_bucket.warehouse.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "warehouse" {
  bucket = aws_s3_bucket.warehouse.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = var.warehouse_kms_key_arn # null: the AWS-managed aws/s3 key
    }
    bucket_key_enabled = true
  }
}

# Iceberg never overwrites a data file; old versions come from deletes (snapshot expiry, compaction) and Flink's
# retired checkpoints: keep them for a while (recovery), then let S3 drop them.
resource "aws_s3_bucket_lifecycle_configuration" "warehouse" {
  bucket = aws_s3_bucket.warehouse.id

  rule {
    id     = "expire-noncurrent"
    status = "Enabled"
    filter {}
    noncurrent_version_expiration {
      noncurrent_days = var.noncurrent_version_days
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }

  depends_on = [aws_s3_bucket_versioning.warehouse]
}

data "aws_iam_policy_document" "warehouse_tls_only" {
  statement {
    sid     = "DenyInsecureTransport"
    effect  = "Deny"
    actions = ["s3:*"]
    resources = [
      aws_s3_bucket.warehouse.arn,
      "${aws_s3_bucket.warehouse.arn}/*",
    ]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "warehouse" {
  bucket     = aws_s3_bucket.warehouse.id
  policy     = data.aws_iam_policy_document.warehouse_tls_only.json
  depends_on = [aws_s3_bucket_public_access_block.warehouse]
}
