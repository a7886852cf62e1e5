# A kind cluster built from k8s/kind/cluster.yaml: that file is the one definition (also usable with the kind CLI
# directly); this module only translates it into the provider's blocks, so the two cannot drift apart.
locals {
  config = yamldecode(file(var.config_path))
}

resource "kind_cluster" "this" {
  name           = coalesce(var.name, local.config.name)
  wait_for_ready = true

  kind_config {
    kind        = local.config.kind
    api_version = local.config.apiVersion

    networking {
      api_server_address = local.config.networking.apiServerAddress
    }

    dynamic "node" {
      for_each = local.config.nodes
      content {
        role  = node.value.role
        image = node.value.image

        dynamic "extra_port_mappings" {
          for_each = try(node.value.extraPortMappings, [])
          content {
            container_port = extra_port_mappings.value.containerPort
            host_port      = extra_port_mappings.value.hostPort
            listen_address = extra_port_mappings.value.listenAddress
            protocol       = extra_port_mappings.value.protocol
          }
        }
      }
    }
  }
}
