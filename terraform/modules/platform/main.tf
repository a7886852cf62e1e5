# The platform on any cluster (kind or EKS): the operators ridecast's chart relies on, each a pinned helm_release
# in its own namespace, then the ridecast release from charts/ridecast with the environment's values file and
# the wiring that only Terraform knows (bucket, IRSA roles, RDS, MSK, image tags). The providers (helm,
# kubernetes) are configured by the calling environment (envs/kind, envs/eks).

locals {
  # k8s/base/namespace.yaml is the one definition of the namespace (also `kubectl apply`-able without Terraform)
  namespace_manifest = yamldecode(file(var.namespace_manifest_path))
  namespace          = local.namespace_manifest.metadata.name
}

resource "kubernetes_namespace_v1" "ridecast" {
  metadata {
    name   = local.namespace
    labels = local.namespace_manifest.metadata.labels
  }
}

# cert-manager: the Flink Kubernetes Operator's admission webhook needs its certificates
resource "helm_release" "cert_manager" {
  name             = "cert-manager"
  repository       = "https://charts.jetstack.io"
  chart            = "cert-manager"
  version          = var.versions.cert_manager
  namespace        = "cert-manager"
  create_namespace = true
  wait             = true
  timeout          = 600

  values = [yamlencode({
    crds = { enabled = true }
  })]
}

resource "helm_release" "flink_operator" {
  name = "flink-kubernetes-operator"
  # archive.apache.org keeps every release (downloads.apache.org only the newest)
  repository       = "https://archive.apache.org/dist/flink/flink-kubernetes-operator-${var.versions.flink_operator}/"
  chart            = "flink-kubernetes-operator"
  version          = var.versions.flink_operator
  namespace        = "flink-operator"
  create_namespace = true
  wait             = true
  timeout          = 600

  values = [yamlencode({
    watchNamespaces = [local.namespace]
  })]

  depends_on = [helm_release.cert_manager, kubernetes_namespace_v1.ridecast]
}

resource "helm_release" "strimzi" {
  count = var.install_strimzi ? 1 : 0

  name             = "strimzi"
  repository       = "oci://quay.io/strimzi-helm"
  chart            = "strimzi-kafka-operator"
  version          = var.versions.strimzi
  namespace        = "strimzi"
  create_namespace = true
  wait             = true
  timeout          = 600

  values = [yamlencode({
    watchNamespaces = [local.namespace]
  })]

  depends_on = [kubernetes_namespace_v1.ridecast]
}

resource "helm_release" "kuberay" {
  name             = "kuberay-operator"
  repository       = "https://ray-project.github.io/kuberay-helm/"
  chart            = "kuberay-operator"
  version          = var.versions.kuberay
  namespace        = "kuberay-operator"
  create_namespace = true
  wait             = true
  timeout          = 600

  values = [yamlencode({
    watchNamespace = [local.namespace]
  })]

  depends_on = [kubernetes_namespace_v1.ridecast]
}

resource "helm_release" "kube_prometheus_stack" {
  count = var.install_monitoring ? 1 : 0

  name             = "kube-prometheus-stack"
  repository       = "https://prometheus-community.github.io/helm-charts"
  chart            = "kube-prometheus-stack"
  version          = var.versions.kube_prometheus_stack
  namespace        = "monitoring"
  create_namespace = true
  wait             = true
  timeout          = 900

  values = [yamlencode({
    prometheus = {
      prometheusSpec = {
        # pick up the ServiceMonitors and PrometheusRules of the ridecast release, not only this chart's own
        serviceMonitorSelectorNilUsesHelmValues = false
        ruleSelectorNilUsesHelmValues           = false
        podMonitorSelectorNilUsesHelmValues     = false
        retention                               = var.prometheus_retention
      }
    }
    grafana = {
      # the chart's dashboards are ConfigMaps labelled grafana_dashboard=1
      sidecar = { dashboards = { enabled = true, searchNamespace = [local.namespace] } }
    }
  })]
}

# The database password of an external PostgreSQL (RDS) as the Secret the chart reads (postgresql.existingSecret).
resource "kubernetes_secret_v1" "postgres" {
  count = var.external_postgres == null ? 0 : 1

  metadata {
    name      = "ridecast-postgresql-external"
    namespace = kubernetes_namespace_v1.ridecast.metadata[0].name
    labels    = { "app.kubernetes.io/part-of" = "ridecast", "app.kubernetes.io/managed-by" = "terraform" }
  }

  data = {
    password = var.external_postgres_password
  }
}

locals {
  # Only the values Terraform knows; everything else is the environment's values file. One place per fact:
  # the chart fans each of these out to every component (one catalog, one warehouse, one Kafka bootstrap).
  # Each piece is its own values document (Helm deep-merges them in order), so absent pieces add nothing.
  wiring_values = concat(
    [yamlencode({
      images = {
        app   = { repository = var.images.app_repository, tag = var.images.tag }
        flink = { repository = var.images.flink_repository, tag = var.images.tag }
      }
    })],
    var.object_storage == null ? [] : [yamlencode({
      objectStorage = { bucket = var.object_storage.bucket, region = var.object_storage.region, endpoint = "" }
      minio         = { enabled = false }
      catalog       = { warehousePrefix = var.object_storage.warehouse_prefix }
    })],
    # the data workloads' service account(s): S3 through the IRSA role (eks.amazonaws.com/role-arn)
    var.workload_role_arn == null ? [] : [yamlencode({
      serviceAccount = { annotations = { "eks.amazonaws.com/role-arn" = var.workload_role_arn } }
    })],
    var.external_postgres == null ? [] : [yamlencode({
      postgresql = {
        enabled        = false
        host           = var.external_postgres.host
        port           = var.external_postgres.port
        sslmode        = "require"
        existingSecret = kubernetes_secret_v1.postgres[0].metadata[0].name
        passwordKey    = "password"
      }
    })],
    var.kafka_bootstrap_servers == null ? [] : [yamlencode({
      kafka = { external = { bootstrapServers = var.kafka_bootstrap_servers } }
    })],
  )
}

resource "helm_release" "ridecast" {
  name      = var.release_name
  chart     = var.chart_path
  namespace = kubernetes_namespace_v1.ridecast.metadata[0].name
  wait      = true
  timeout   = var.release_timeout_s
  # a failed install or upgrade rolls back instead of leaving a half-applied release
  atomic          = true
  cleanup_on_fail = true

  values = concat(
    [for f in var.values_files : file(f)],
    local.wiring_values,
    length(var.extra_values) == 0 ? [] : [yamlencode(var.extra_values)],
  )

  depends_on = [
    helm_release.flink_operator,
    helm_release.strimzi,
    helm_release.kuberay,
    helm_release.kube_prometheus_stack,
  ]
}
