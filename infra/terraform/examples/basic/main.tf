# An example root module: the CPU pool of an existing cluster (kubeconfig), models in an existing
# claim. `terraform init && terraform apply -var model_claim=bitnet-models`.
terraform {
  required_version = ">= 1.3"
  required_providers {
    kubernetes = {
      source  = "hashicorp/kubernetes"
      version = ">= 2.23"
    }
  }
}

variable "kubeconfig" {
  description = "Path of the kubeconfig of the target cluster."
  type        = string
  default     = "~/.kube/config"
}

variable "model_claim" {
  description = "Existing PersistentVolumeClaim with the GGUF models."
  type        = string
  default     = "bitnet-models"
}

provider "kubernetes" {
  config_path = var.kubeconfig
}

module "bitnet_cpu" {
  source         = "../../modules/bitnet-server"
  name           = "bitnet-server"
  image          = "bitnet-cpp/bitnet:cpu"
  model_claim    = var.model_claim
  model_file     = "model.gguf"
  pool           = "cpu"
  replicas       = 2
  max_replicas   = 6
  threads        = 2
  memory_request = "349Mi"
  memory_limit   = "419Mi"
}

output "api_url" {
  value = module.bitnet_cpu.service_url
}
