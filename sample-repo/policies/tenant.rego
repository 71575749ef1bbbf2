# Contoso's own rules, evaluated with ringmaster's built-in policy bundle.
# Each rule adds a restriction; none of them may relax a built-in rule.
package ringmaster.tenant.contoso

import rego.v1

# Where a privileged artifact may come from: straight from the vendor or from
# our own signed build pipeline, never a repackaged or unknown binary.
trusted_privileged_sources := {"vendor", "internal-build"}

# Fabrikam (acq-002) devices are not enrolled in Contoso's Intune or Jamf
# tenants until the identity migration is done; until then they are reached
# only through Fabrikam's Configuration Manager site, Landscape and Ansible.
fabrikam_planes := {"sccm", "landscape", "ansible"}

# Privileged agents run as SYSTEM/root on every device they reach.
deny contains {"rule": "contoso.privileged_trusted_provenance", "message": msg} if {
	input.application.privileged
	not trusted_privileged_sources[input.artifact.provenance.source]
	msg := sprintf("%s is privileged: artifact %s has provenance source '%s'; only vendor or internal-build artifacts may carry privileged agents", [input.application.id, input.artifact.id, input.artifact.provenance.source])
}

# A privileged agent's signature must have been verified by the packaging
# pipeline, not only be present.
deny contains {"rule": "contoso.privileged_verified_signature", "message": msg} if {
	input.application.privileged
	not input.artifact.signature.verified
	msg := sprintf("%s is privileged: the signature of artifact %s was not verified against a trusted root", [input.application.id, input.artifact.id])
}

deny contains {"rule": "contoso.fabrikam_planes_only", "message": msg} if {
	input.intent.target_scope.acquisition_boundary == "acq-002"
	not fabrikam_planes[input.artifact.plane]
	msg := sprintf("acq-002 (Fabrikam) devices are not enrolled in %s yet; target them through sccm, landscape or ansible", [input.artifact.plane])
}
