locals {
  labels = {
    "app.kubernetes.io/name"      = var.name
    "app.kubernetes.io/part-of"   = "bitnet-cpp"
    "app.kubernetes.io/component" = "server"
  }
  gpu = var.pool == "gpu"
  env = merge(
    {
      LLAMA_ARG_HOST     = "0.0.0.0"
      LLAMA_ARG_PORT     = "8080"
      LLAMA_ARG_MODEL    = "/models/${var.model_file}"
      LLAMA_ARG_CTX_SIZE = tostring(var.ctx_size)
      LLAMA_ARG_PARALLEL = tostring(var.parallel)
      LLAMA_ARG_THREADS  = tostring(var.threads)
      LLAMA_ARG_METRICS  = "1"
    },
    local.gpu ? { LLAMA_ARG_GPU_LAYERS = "99" } : {}
  )
}

resource "kubernetes_deployment_v1" "server" {
  metadata {
    name      = var.name
    namespace = var.namespace
    labels    = local.labels
  }
  spec {
    replicas = var.replicas
    selector {
      match_labels = local.labels
    }
    template {
      metadata {
        labels      = local.labels
        annotations = {
          "prometheus.io/scrape" = "true"
          "prometheus.io/port"   = "8080"
          "prometheus.io/path"   = "/metrics"
        }
      }
      spec {
        termination_grace_period_seconds = 30
        node_selector                    = var.node_selector
        security_context {
          run_as_non_root = true
          run_as_user     = 10001
          run_as_group    = 10001
          fs_group        = 10001
        }
        dynamic "toleration" {
          for_each = local.gpu ? [1] : []
          content {
            key      = "nvidia.com/gpu"
            operator = "Exists"
            effect   = "NoSchedule"
          }
        }
        container {
          name  = "server"
          image = var.image
          dynamic "env" {
            for_each = local.env
            content {
              name  = env.key
              value = env.value
            }
          }
          port {
            name           = "http"
            container_port = 8080
          }
          startup_probe {
            http_get {
              path = "/health"
              port = "http"
            }
            period_seconds    = 5
            failure_threshold = 60
          }
          readiness_probe {
            http_get {
              path = "/health"
              port = "http"
            }
            period_seconds    = 5
            failure_threshold = 2
          }
          liveness_probe {
            http_get {
              path = "/health"
              port = "http"
            }
            period_seconds    = 10
            timeout_seconds   = 5
            failure_threshold = 6
          }
          resources {
            requests = {
              cpu    = tostring(var.threads)
              memory = var.memory_request
            }
            limits = merge({ memory = var.memory_limit }, local.gpu ? { "nvidia.com/gpu" = "1" } : {})
          }
          security_context {
            allow_privilege_escalation = false
            read_only_root_filesystem  = true
          }
          volume_mount {
            name       = "models"
            mount_path = "/models"
            read_only  = true
          }
          volume_mount {
            name       = "tmp"
            mount_path = "/tmp"
          }
        }
        volume {
          name = "models"
          persistent_volume_claim {
            claim_name = var.model_claim
            read_only  = true
          }
        }
        volume {
          name = "tmp"
          empty_dir {}
        }
      }
    }
  }
}

resource "kubernetes_service_v1" "server" {
  metadata {
    name      = var.name
    namespace = var.namespace
    labels    = local.labels
  }
  spec {
    selector = local.labels
    port {
      name        = "http"
      port        = 8080
      target_port = "http"
    }
  }
}

resource "kubernetes_horizontal_pod_autoscaler_v2" "server" {
  metadata {
    name      = var.name
    namespace = var.namespace
  }
  spec {
    min_replicas = var.min_replicas
    max_replicas = var.max_replicas
    scale_target_ref {
      api_version = "apps/v1"
      kind        = "Deployment"
      name        = kubernetes_deployment_v1.server.metadata[0].name
    }
    metric {
      type = "Pods"
      pods {
        metric {
          name = "bitnet_queue_length"
        }
        target {
          type          = "AverageValue"
          average_value = tostring(var.queue_target)
        }
      }
    }
  }
}

resource "kubernetes_pod_disruption_budget_v1" "server" {
  metadata {
    name      = var.name
    namespace = var.namespace
  }
  spec {
    min_available = "1"
    selector {
      match_labels = local.labels
    }
  }
}
