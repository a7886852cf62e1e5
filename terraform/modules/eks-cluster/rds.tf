# Optional RDS PostgreSQL: the Iceberg JDBC catalog (database `ridecast`) and MLflow's backend store (database
# `mlflow`, created once by the chart's init job). Reachable only from the cluster's nodes. The password is
# generated alphanumeric (it is placed into JDBC/SQLAlchemy URIs) and handed to the platform module, which puts
# it into the Kubernetes Secret the chart reads (postgresql.existingSecret): keep the state backend encrypted.

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

  db_name  = "ridecast"
  username = "ridecast"
  password = random_password.postgres[0].result

  db_subnet_group_name   = module.vpc.database_subnet_group_name
  vpc_security_group_ids = [aws_security_group.postgres[0].id]
  publicly_accessible    = false
  multi_az               = var.rds.multi_az

  backup_retention_period             = 7
  deletion_protection                 = var.rds.deletion_protection
  skip_final_snapshot                 = !var.rds.deletion_protection
  final_snapshot_identifier           = var.rds.deletion_protection ? "${var.name}-catalog-final" : null
  copy_tags_to_snapshot               = true
  auto_minor_version_upgrade          = true
  iam_database_authentication_enabled = true
  performance_insights_enabled        = true
  monitoring_interval                 = 0
  enabled_cloudwatch_logs_exports     = ["postgresql"]

  tags = local.tags
}
