//! The CustomResourceDefinitions as the API server should receive them.
//!
//! schemars emits formats such as `uint32` for unsigned integers; Kubernetes
//! does not know them and `kubectl apply` warns "unrecognized format" for
//! each. They add nothing there (the `minimum: 0` beside them already says it),
//! so every format outside the set the API server validates is dropped.

use super::{ConfluenceSite, ConfluenceSpace, ViewerBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};
use kube::CustomResourceExt;

/// Formats the Kubernetes API server understands in structural schemas.
const KNOWN_FORMATS: &[&str] = &[
    "bsonobjectid",
    "uri",
    "email",
    "hostname",
    "ipv4",
    "ipv6",
    "cidr",
    "mac",
    "uuid",
    "uuid3",
    "uuid4",
    "uuid5",
    "isbn",
    "isbn10",
    "isbn13",
    "creditcard",
    "ssn",
    "hexcolor",
    "rgbcolor",
    "byte",
    "password",
    "date",
    "duration",
    "datetime",
    "date-time",
    "int32",
    "int64",
    "float",
    "double",
];

/// Every CRD this operator owns, ready to apply.
pub fn all() -> Vec<CustomResourceDefinition> {
    let mut crds = vec![
        ConfluenceSite::crd(),
        ConfluenceSpace::crd(),
        ViewerBinding::crd(),
    ];
    for crd in &mut crds {
        for version in &mut crd.spec.versions {
            if let Some(schema) = version
                .schema
                .as_mut()
                .and_then(|s| s.open_api_v3_schema.as_mut())
            {
                drop_unknown_formats(schema);
            }
        }
    }
    crds
}

fn drop_unknown_formats(schema: &mut JSONSchemaProps) {
    if schema
        .format
        .as_deref()
        .is_some_and(|f| !KNOWN_FORMATS.contains(&f))
    {
        schema.format = None;
    }
    let nested = schema
        .properties
        .iter_mut()
        .flat_map(|p| p.values_mut())
        .chain(
            schema
                .pattern_properties
                .iter_mut()
                .flat_map(|p| p.values_mut()),
        )
        .chain(schema.definitions.iter_mut().flat_map(|p| p.values_mut()))
        .chain(schema.all_of.iter_mut().flatten())
        .chain(schema.any_of.iter_mut().flatten())
        .chain(schema.one_of.iter_mut().flatten())
        .chain(schema.not.as_deref_mut())
        .chain(match schema.items.as_mut() {
            Some(JSONSchemaPropsOrArray::Schema(s)) => vec![s.as_mut()],
            Some(JSONSchemaPropsOrArray::Schemas(v)) => v.iter_mut().collect(),
            None => vec![],
        })
        .chain(match schema.additional_properties.as_mut() {
            Some(JSONSchemaPropsOrBool::Schema(s)) => Some(s.as_mut()),
            _ => None,
        });
    for child in nested {
        drop_unknown_formats(child);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn formats(schema: &JSONSchemaProps, out: &mut Vec<String>) {
        out.extend(schema.format.clone());
        for p in schema.properties.iter().flat_map(|p| p.values()) {
            formats(p, out);
        }
        if let Some(JSONSchemaPropsOrArray::Schema(s)) = &schema.items {
            formats(s, out);
        }
        if let Some(JSONSchemaPropsOrBool::Schema(s)) = &schema.additional_properties {
            formats(s, out);
        }
    }

    #[test]
    fn only_formats_kubernetes_knows_remain() {
        let mut seen = Vec::new();
        for crd in all() {
            for v in &crd.spec.versions {
                if let Some(s) = v
                    .schema
                    .as_ref()
                    .and_then(|s| s.open_api_v3_schema.as_ref())
                {
                    formats(s, &mut seen);
                }
            }
        }
        let unknown: Vec<_> = seen
            .iter()
            .filter(|f| !KNOWN_FORMATS.contains(&f.as_str()))
            .collect();
        assert!(unknown.is_empty(), "unknown formats left: {unknown:?}");
        // The integer bounds that the dropped formats implied are still there.
        let site = serde_json::to_value(&all()[0]).unwrap();
        let max = &site["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
            ["maxConcurrency"];
        assert_eq!(max["minimum"].as_f64(), Some(1.0), "{max}");
    }
}
