//! Prints the CustomResourceDefinitions as YAML; `crds/` is generated from it.

use confluence_operator::api::{ConfluenceSite, ConfluenceSpace, ViewerBinding};
use kube::CustomResourceExt;

fn main() -> Result<(), serde_yaml_ng::Error> {
    for crd in [
        ConfluenceSite::crd(),
        ConfluenceSpace::crd(),
        ViewerBinding::crd(),
    ] {
        print!("---\n{}", serde_yaml_ng::to_string(&crd)?);
    }
    Ok(())
}
