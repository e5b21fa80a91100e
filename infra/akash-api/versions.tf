terraform {
  # 1.8 or any later 1.x: everything used here (terraform_data, yamldecode,
  # startswith, output preconditions, `terraform test`) exists there, and a
  # 2.0 deserves a review before it runs against a live deployment.
  required_version = "~> 1.8"

  # No provider on purpose, as in ../akash-banano: there is no well-known,
  # maintained official Akash provider to pin. Terraform renders the SDL with
  # the Banano endpoint injected and validated; runbook's `akash_update`
  # applies it to the live deployment (playbooks/split-deploy.rhai).
}
