terraform {
  # 1.8 or any later 1.x: everything used here (terraform_data, yamldecode,
  # startswith, output preconditions, `terraform test`) exists there, and a
  # 2.0 deserves a review before it runs against a live deployment.
  required_version = "~> 1.8"

  # No provider on purpose. There is no well-known, maintained official Akash
  # provider to pin, and installing an unknown one would be the least honest
  # part of this stack. Terraform here owns the *description* of the
  # deployment (the rendered SDL and the values the pipeline publishes);
  # creating and updating the lease is runbook's `akash_update` primitive,
  # through the Akash Console API (playbooks/split-deploy.rhai).
}
