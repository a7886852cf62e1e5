# Optional RDS PostgreSQL: the Iceberg JDBC catalog (database `ridecast`) and MLflow's backend store (database
# `mlflow`, created once by the chart's init job). Reachable only from the cluster's nodes. The password is
# generated alphanumeric (it is placed into JDBC/SQLAlchemy URIs) and handed to the platform module, which puts
# it into the Kubernetes Secret the chart reads (postgresql.existingSecret): keep the state backend encrypted.
# Deletion protection is always on (the catalog is the lake's source of truth): to destroy, turn it off in the
# console or with a one-off `-replace`, deliberately.

data "aws_caller_identity" "current" {}

# the database's own key: storage, Performance Insights and snapshots
resource "aws_kms_key" "postgres" {
  count                   = var.rds.enabled ? 1 : 0
  description             = "ridecast ${var.name} PostgreSQL"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "AccountAdministers"
      Effect    = "Allow"
      Principal = { AWS = "arn:aws:iam::${data.aws_caller_identity.current.account_id}:root" }
      Action    = "kms:*"
      Resource  = "*"
    }]
  })
  tags = local.tags
}

# Enhanced Monitoring: OS metrics of the instance every minute
data "aws_iam_policy_document" "rds_monitoring_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["monitoring.rds.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "rds_monitoring" {
  count              = var.rds.enabled ? 1 : 0
  name               = "${var.name}-rds-monitoring"
  assume_role_policy = data.aws_iam_policy_document.rds_monitoring_assume.json
  tags               = local.tags
}

resource "aws_iam_role_policy_attachment" "rds_monitoring" {
  count      = var.rds.enabled ? 1 : 0
  role       = aws_iam_role.rds_monitoring[0].name
  policy_arn = "arn:aws:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"
}

resource "random_password" "postgres" {
  count   = var.rds.enabled ? 1 : 0
  length  = 32
  special = false
}

resource "aws_security_group" "postgres" {
  count       = var.rds.enabled ? 1 : 0
  name        = "${var.name}-postgres"
  description = "ridecast PostgreSQL: from the EKS nodes only"
  vpc_id      = module.vpc.vpc_id
  tags        = local.tags
}

resource "aws_vpc_security_group_ingress_rule" "postgres_from_nodes" {
  count                        = var.rds.enabled ? 1 : 0
  security_group_id            = aws_security_group.postgres[0].id
  description                  = "PostgreSQL from EKS nodes"
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
  referenced_security_group_id = module.eks.node_security_group_id
}

resource "aws_db_instance" "postgres" {
  count = var.rds.enabled ? 1 : 0

  identifier     = "${var.name}-catalog"
  engine         = "postgres"
  engine_version = var.rds.engine_version
  instance_class = var.rds.instance_class

  allocated_storage     = var.rds.allocated_storage_gb
  max_allocated_storage = var.rds.allocated_storage_gb * 4
  storage_type          = "gp3"
  storage_encrypted     = true
  kms_key_id            = aws_kms_key.postgres[0].arn

  db_name  = "ridecast"
  username = "ridecast"
  password = random_password.postgres[0].result

  db_subnet_group_name   = module.vpc.database_subnet_group_name
  vpc_security_group_ids = [aws_security_group.postgres[0].id]
  publicly_accessible    = false
  multi_az               = var.rds.multi_az

  backup_retention_period             = 7
  deletion_protection                 = true
  skip_final_snapshot                 = false
  final_snapshot_identifier           = "${var.name}-catalog-final"
  copy_tags_to_snapshot               = true
  auto_minor_version_upgrade          = true
  iam_database_authentication_enabled = true
  performance_insights_enabled        = true
  performance_insights_kms_key_id     = aws_kms_key.postgres[0].arn
  monitoring_interval                 = 60
  monitoring_role_arn                 = aws_iam_role.rds_monitoring[0].arn
  enabled_cloudwatch_logs_exports     = ["postgresql"]

  tags = local.tags
}
