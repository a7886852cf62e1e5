# Remote state for EKS: an S3 bucket (versioned, encrypted, private) with a lock, so that a laptop and the
# deploy workflow never apply at once and the state (which holds the generated RDS password) is encrypted at
# rest. Create the state bucket once, outside this configuration, then uncomment and fill in:
#
# terraform {
#   backend "s3" {
#     bucket       = "my-org-terraform-state"
#     key          = "ridecast/eks/terraform.tfstate"
#     region       = "eu-west-1"
#     encrypt      = true
#     use_lockfile = true # S3-native locking (Terraform >= 1.10)
#     # or, the older DynamoDB lock table (a table with a string partition key "LockID"):
#     # dynamodb_table = "terraform-locks"
#   }
# }
#
# The deploy workflow passes the same settings with `terraform init -backend-config=...` from repository
# variables (TF_STATE_BUCKET, TF_STATE_REGION), so nothing account-specific is committed. Without a backend
# block Terraform keeps local state: fine for a first try, wrong for a shared cluster.
