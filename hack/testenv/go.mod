// Module root of the hack/testenv commands (cmd/). Their requirements are
// those of one Kubernetes release at a time: versions/<minor>/go.mod, which
// hack/testenv/build passes with -modfile (this file is then not read).
module confluence-operator/hack/testenv

go 1.26.0
