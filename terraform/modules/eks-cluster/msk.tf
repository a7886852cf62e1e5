# Optional MSK (Kafka): the chart then renders no Strimzi resources and every component uses this bootstrap
# (kafka.external.bootstrapServers). Brokers talk TLS among themselves; clients get both a TLS listener (9094)
# and a plaintext one (9092), because the chart's Kafka clients (Flink's connector, kafka-python) are not yet
# configured for TLS. Both are reachable only from the EKS nodes' security group, inside the private subnets.

resource "aws_security_group" "msk" {
  count       = var.msk.enabled ? 1 : 0
  name        = "${var.name}-msk"
  description = "ridecast MSK: from the EKS nodes only"
  vpc_id      = module.vpc.vpc_id
  tags        = local.tags
}

resource "aws_vpc_security_group_ingress_rule" "msk_from_nodes" {
  for_each                     = var.msk.enabled ? { plaintext = 9092, tls = 9094 } : {}
  security_group_id            = aws_security_group.msk[0].id
  description                  = "Kafka ${each.key} from EKS nodes"
  ip_protocol                  = "tcp"
  from_port                    = each.value
  to_port                      = each.value
  referenced_security_group_id = module.eks.node_security_group_id
}

resource "aws_cloudwatch_log_group" "msk" {
  count             = var.msk.enabled ? 1 : 0
  name              = "/ridecast/${var.name}/msk"
  retention_in_days = 30
  tags              = local.tags
}

resource "aws_msk_cluster" "kafka" {
  count = var.msk.enabled ? 1 : 0

  cluster_name           = "${var.name}-kafka"
  kafka_version          = var.msk.kafka_version
  number_of_broker_nodes = var.msk.broker_count

  broker_node_group_info {
    instance_type   = var.msk.instance_type
    client_subnets  = slice(module.vpc.database_subnets, 0, var.msk.broker_count)
    security_groups = [aws_security_group.msk[0].id]
    storage_info {
      ebs_storage_info {
        volume_size = var.msk.volume_size_gb
      }
    }
  }

  encryption_info {
    encryption_in_transit {
      client_broker = "TLS_PLAINTEXT"
      in_cluster    = true
    }
  }

  logging_info {
    broker_logs {
      cloudwatch_logs {
        enabled   = true
        log_group = aws_cloudwatch_log_group.msk[0].name
      }
    }
  }

  tags = local.tags
}
