//! Prints the CustomResourceDefinitions as YAML; `crds/` is generated from it.

use confluence_operator::api::crds;

fn main() -> Result<(), serde_yaml_ng::Error> {
    for crd in crds::all() {
        print!("---\n{}", serde_yaml_ng::to_string(&crd)?);
    }
    Ok(())
}
