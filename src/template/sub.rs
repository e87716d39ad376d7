//! `Fn::Sub`: `${Name}` substitution in strings.

use super::resolve::{child, index, Resolver};
use super::TemplateError;
use serde_json::{Map, Value};

/// A piece of an `Fn::Sub` string.
#[derive(Debug, PartialEq)]
enum Piece<'s> {
    Text(&'s str),
    /// `${Name}`, name trimmed.
    Var(&'s str),
}

/// Splits an `Fn::Sub` string. `${!x}` is the escape for a literal `${x}`; a `${` with no
/// closing brace is left as text, as CloudFormation does.
fn pieces(text: &str) -> Vec<Piece<'_>> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else { break };
        if start > 0 {
            out.push(Piece::Text(&rest[..start]));
        }
        let name = &after[..end];
        if let Some(literal) = name.strip_prefix('!') {
            out.push(Piece::Text("${"));
            out.push(Piece::Text(literal));
            out.push(Piece::Text("}"));
        } else {
            out.push(Piece::Var(name.trim()));
        }
        rest = &after[end + 1..];
    }
    if !rest.is_empty() {
        out.push(Piece::Text(rest));
    }
    out
}

impl Resolver<'_> {
    /// `path` is the `...Fn::Sub` path.
    pub(super) fn sub(
        &mut self,
        arg: &Value,
        path: &str,
        depth: usize,
    ) -> Result<String, TemplateError> {
        let usage = "Fn::Sub needs 'string' or ['string', {Name: value, ...}]";
        let (text, text_path, vars) = match arg {
            Value::String(text) => (text, path.to_string(), None),
            Value::Array(items) if items.len() == 2 => match (&items[0], &items[1]) {
                (Value::String(text), Value::Object(vars)) => (text, index(path, 0), Some(vars)),
                _ => return Err(self.invalid(path, usage)),
            },
            _ => return Err(self.invalid(path, usage)),
        };
        // Every variable is resolved, used or not, as CloudFormation validates them all.
        let mut values = Map::new();
        if let Some(vars) = vars {
            let vars_path = index(path, 1);
            for (name, value) in vars {
                let value = self.string(value, &child(&vars_path, name), depth, "Fn::Sub")?;
                values.insert(name.clone(), Value::String(value));
            }
        }
        let mut out = String::with_capacity(text.len());
        for piece in pieces(text) {
            // Charged piece by piece: one string with many `${Big}` is the quadratic case.
            match piece {
                Piece::Text(t) => {
                    self.charge(path, t.len())?;
                    out.push_str(t)
                }
                Piece::Var(name) => match values.get(name) {
                    Some(Value::String(v)) => {
                        self.charge(path, v.len())?;
                        out.push_str(v)
                    }
                    _ => {
                        let v = self.sub_name(name, &text_path)?;
                        self.charge(path, v.len())?;
                        out.push_str(&v)
                    }
                },
            }
        }
        Ok(out)
    }

    /// `${Name}` that is not an explicit variable: pseudo parameter, parameter, resource,
    /// or `Resource.Attribute`.
    fn sub_name(&mut self, name: &str, path: &str) -> Result<String, TemplateError> {
        if name.starts_with("AWS::") {
            return match self.reference(name, path) {
                Ok(Some(Value::String(v))) => Ok(v),
                Ok(_) => Err(self.invalid(
                    path,
                    &format!("Fn::Sub cannot use ${{{name}}}: it is not a string"),
                )),
                Err(TemplateError::UnknownName { .. }) => {
                    Err(self.unknown(path, "Fn::Sub", "pseudo parameter", name))
                }
                Err(e) => Err(e),
            };
        }
        let tpl = self.tpl;
        if tpl.section("Parameters").contains_key(name) {
            return self.scalar_parameter(name, path);
        }
        if tpl.section("Resources").contains_key(name) {
            return Ok(format!("<{name}>"));
        }
        if let Some((resource, attribute)) = name.split_once('.') {
            if tpl.section("Resources").contains_key(resource) {
                return self.attribute(resource, attribute, path, "Fn::Sub");
            }
        }
        Err(self.unknown(path, "Fn::Sub", "parameter, resource or variable", name))
    }
}

#[cfg(test)]
mod tests {
    use super::{pieces, Piece::*};

    #[test]
    fn splits_text_variables_and_escapes() {
        assert_eq!(
            pieces("a${B}c${!D}${ E }"),
            vec![
                Text("a"),
                Var("B"),
                Text("c"),
                Text("${"),
                Text("D"),
                Text("}"),
                Var("E")
            ]
        );
        assert_eq!(pieces(""), vec![]);
        assert_eq!(pieces("$x ${unclosed"), vec![Text("$x ${unclosed")]);
        assert_eq!(pieces("${A}${B}"), vec![Var("A"), Var("B")]);
        assert_eq!(pieces("é${Ä}ü"), vec![Text("é"), Var("Ä"), Text("ü")]);
    }
}
