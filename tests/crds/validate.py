"""Validates Kubernetes objects (JSON lines on stdin) against the CRD schemas in fixtures/crds
(argv[1]) the way the API server's structural schemas judge them: types, enums, patterns,
required fields, and no field the schema does not know (kubectl's default field validation is
strict). CEL rules (x-kubernetes-validations) and formats are not evaluated. Prints one line per
violation: `document N (Kind name): path: message`."""
import glob, json, os, sys
from jsonschema import Draft7Validator


def structural(node):
    """An OpenAPI v3 structural schema as JSON Schema draft 7."""
    if isinstance(node, list):
        return [structural(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key in ("properties", "patternProperties", "definitions"):
            out[key] = {k: structural(v) for k, v in value.items()}
        elif key in ("items", "additionalProperties", "not") and isinstance(value, dict):
            out[key] = structural(value)
        elif key in ("allOf", "anyOf", "oneOf"):
            out[key] = structural(value)
        elif key.startswith("x-kubernetes-") or key in ("nullable", "format", "default", "example"):
            continue
        else:
            out[key] = value
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = out.get("anyOf", []) + [{"type": "integer"}, {"type": "string"}]
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    if node.get("x-kubernetes-embedded-resource"):
        props = out.setdefault("properties", {})
        props.setdefault("apiVersion", {"type": "string"})
        props.setdefault("kind", {"type": "string"})
        props.setdefault("metadata", {"type": "object"})
    if (
        "properties" in node
        and "additionalProperties" not in node
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def load(directory):
    schemas = {}
    for path in sorted(glob.glob(os.path.join(directory, "*.json"))):
        crd = json.load(open(path))
        for version, schema in crd["versions"].items():
            converted = structural(schema)
            props = converted.setdefault("properties", {})
            props["apiVersion"] = {"const": f"{crd['group']}/{version}"}
            props["kind"] = {"const": crd["kind"]}
            converted.setdefault("required", [])
            converted["required"] = sorted(set(converted["required"]) | {"apiVersion", "kind"})
            Draft7Validator.check_schema(converted)
            schemas[(f"{crd['group']}/{version}", crd["kind"])] = Draft7Validator(converted)
    return schemas


def main():
    schemas = load(sys.argv[1])
    for i, line in enumerate(sys.stdin):
        doc = json.loads(line)
        who = f"document {i + 1} ({doc.get('kind')} {doc.get('metadata', {}).get('name')})"
        validator = schemas.get((doc.get("apiVersion"), doc.get("kind")))
        if validator is None:
            print(f"{who}: no CRD schema for {doc.get('apiVersion')} {doc.get('kind')} in {sys.argv[1]}")
            continue
        for e in validator.iter_errors(doc):
            print(f"{who}: {'/'.join(map(str, e.absolute_path))}: {e.message}")


main()
