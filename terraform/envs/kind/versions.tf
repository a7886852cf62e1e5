terraform {
  required_version = ">= 1.9.0, < 2.0.0"

  required_providers {
    kind = {
      source  = "tehcyx/kind"
      version = "0.11.0"
    }
    helm = {
      source  = "hashicorp/helm"
      version = "3.1.1"
    }
    kubernetes = {
      source  = "hashicorp/kubernetes"
      version = "2.38.0"
    }
  }

  # A kind cluster lives and dies with this machine: its state stays local (terraform.tfstate here, ignored by
  # git). Remote state is for envs/eks.
  backend "local" {
    path = "terraform.tfstate"
  }
}
