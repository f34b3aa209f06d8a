variable "name" {
  description = "Name of the Deployment, Service, HPA and PDB."
  type        = string
  default     = "bitnet-server"
}

variable "namespace" {
  description = "Existing namespace to deploy into."
  type        = string
  default     = "default"
}

variable "image" {
  description = "Server image (infra/docker/cpu.Dockerfile or cuda.Dockerfile), with its tag."
  type        = string
  default     = "bitnet-cpp/bitnet:cpu"
}

variable "model_claim" {
  description = "Existing PersistentVolumeClaim holding the GGUF models, mounted read-only at /models."
  type        = string
}

variable "model_file" {
  description = "Model path inside the claim."
  type        = string
  default     = "model.gguf"
}

variable "replicas" {
  description = "Initial replicas; the HPA scales between min_replicas and max_replicas."
  type        = number
  default     = 2
}

variable "min_replicas" {
  description = "Fewest replicas the HPA keeps."
  type        = number
  default     = 2
}

variable "max_replicas" {
  description = "Most replicas the HPA starts."
  type        = number
  default     = 8
}

variable "pool" {
  description = "Node pool kind: cpu, or gpu (requests nvidia.com/gpu and offloads every layer)."
  type        = string
  default     = "cpu"
  validation {
    condition     = contains(["cpu", "gpu"], var.pool)
    error_message = "pool must be \"cpu\" or \"gpu\"."
  }
}

variable "node_selector" {
  description = "Node labels the pods must match (e.g. the pool's label)."
  type        = map(string)
  default     = {}
}

variable "threads" {
  description = "Threads per server (also the CPU request)."
  type        = number
  default     = 2
}

variable "ctx_size" {
  description = "Context tokens shared by the slots (-c)."
  type        = number
  default     = 4096
}

variable "parallel" {
  description = "Slots per server (-np)."
  type        = number
  default     = 4
}

variable "memory_request" {
  description = "Memory request: from infra/k8s/resources.py (bitnet doctor --json) for the model and context."
  type        = string
  default     = "1Gi"
}

variable "memory_limit" {
  description = "Memory limit."
  type        = string
  default     = "1536Mi"
}

variable "queue_target" {
  description = "Average requests waiting per pod (bitnet_queue_length) the HPA aims for."
  type        = number
  default     = 2
}
