//! SR-IOV VF discovery for pollux pods (see the module docs once written).
