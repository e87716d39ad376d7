use super::*;
use serde_json::json;

fn ctx() -> ResolveContext {
    ResolveContext::fake("stack", "eu-west-1")
}

fn ctx_with(params: &[(&str, &str)]) -> ResolveContext {
    let mut ctx = ctx();
    for (k, v) in params {
        ctx.params.insert(k.to_string(), v.to_string());
    }
    ctx
}

/// A template whose resource `R` has `Metadata: {v: <value>}`, plus `extra` top-level YAML.
fn with_value(value: &str, extra: &str) -> Template {
    let text = format!(
        "{extra}\nResources:\n  Other:\n    Type: AWS::SNS::Topic\n  R:\n    Type: AWS::EC2::Instance\n    Metadata:\n      v: {value}\n"
    );
    Template::parse(&text, "t.yaml").unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// Resolves `value` (YAML) in the context of `extra` sections.
fn eval(value: &str, extra: &str, ctx: &ResolveContext) -> Result<Value, TemplateError> {
    let meta = with_value(value, extra).resource_metadata("R", ctx)?;
    Ok(meta.get("v").cloned().unwrap_or(Value::Null))
}

fn ok(value: &str, extra: &str) -> Value {
    eval(value, extra, &ctx()).unwrap_or_else(|e| panic!("{e}"))
}

fn err(value: &str, extra: &str) -> String {
    match eval(value, extra, &ctx()) {
        Ok(v) => panic!("expected an error, got {v}"),
        Err(e) => e.to_string(),
    }
}

const PARAMS: &str = "
Parameters:
  Env:
    Type: String
    Default: dev
    AllowedValues: [dev, prod]
  NoDefault:
    Type: String
  Count:
    Type: Number
    Default: 2
  Subnets:
    Type: List<AWS::EC2::Subnet::Id>
    Default: 'subnet-1, subnet-2'
  Names:
    Type: CommaDelimitedList
    Default: a,b,c
  Ami:
    Type: AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>
    Default: /aws/service/ecs/optimized-ami/amazon-linux-2023/recommended/image_id
  SsmList:
    Type: AWS::SSM::Parameter::Value<List<String>>
    Default: /my/list
";

// ---- parsing and accessors ----

#[test]
fn json_template_accessors_keep_template_order() {
    let t = Template::parse(
        r#"{"Resources": {"Zeta": {"Type": "AWS::ECS::Cluster"},
                          "Alpha": {"Type": "AWS::SNS::Topic", "Metadata": {"k": {"Ref": "Zeta"}}}}}"#,
        "t.json",
    )
    .unwrap();
    assert_eq!(t.resource_ids(), ["Zeta", "Alpha"]);
    assert_eq!(t.resource_type("Alpha"), Some("AWS::SNS::Topic"));
    assert_eq!(t.resource_type("Nope"), None);
    assert_eq!(
        t.resource_metadata("Alpha", &ctx()).unwrap(),
        json!({"k": "<Zeta>"})
    );
    assert_eq!(t.resource_metadata("Zeta", &ctx()).unwrap(), Value::Null);
}

#[test]
fn json_syntax_error_has_line_and_file() {
    let e = Template::parse(
        "{\n  \"Resources\": {\n    \"A\": {\"Type\": \"X\"}}}}\n",
        "bad.json",
    )
    .unwrap_err();
    assert!(
        matches!(e, TemplateError::Syntax { line: Some(3), .. }),
        "{e:?}"
    );
    assert!(e.to_string().starts_with("bad.json:3:"), "{e}");
}

#[test]
fn yaml_flow_mapping_starting_with_brace_is_accepted() {
    let t = Template::parse(
        "{Resources: {A: {Type: X, Metadata: {k: !Ref A}}}}",
        "t.yaml",
    )
    .unwrap();
    assert_eq!(
        t.resource_metadata("A", &ctx()).unwrap(),
        json!({"k": "<A>"})
    );
}

#[test]
fn yaml_syntax_error_through_template_parse() {
    let e = Template::parse("Resources:\n  A:\n    Type: [x\n", "t.yaml").unwrap_err();
    assert!(
        matches!(e, TemplateError::Syntax { line: Some(_), .. }),
        "{e:?}"
    );
    assert!(e.to_string().starts_with("t.yaml:"), "{e}");
}

#[test]
fn unknown_tag_through_template_parse() {
    let e = Template::parse("Resources:\n  A:\n    Type: !Bogus x\n", "t.yaml").unwrap_err();
    assert_eq!(
        e.to_string(),
        "t.yaml:3:11: Resources.A.Type: unknown YAML tag !Bogus"
    );
}

#[test]
fn structural_problems_are_reported_at_parse_time() {
    let cases = [
        ("", "(top level)"),
        ("- a\n", "(top level)"),
        ("Parameters: {}\n", "Resources: missing"),
        ("Resources: []\n", "Resources: must be a mapping"),
        (
            "Resources:\n  A: 1\n",
            "Resources.A: a resource must be a mapping",
        ),
        ("Resources:\n  A: {}\n", "Resources.A.Type"),
        (
            "Resources:\n  A: {Type: X, Condition: [a]}\n",
            "Resources.A.Condition",
        ),
        ("Parameters:\n  P: {}\nResources: {}\n", "Parameters.P.Type"),
        (
            "Mappings: 3\nResources: {}\n",
            "t.yaml:1: Mappings: must be a mapping",
        ),
        (
            "Resources:\n  A:\n    Type: [a]\n",
            "t.yaml:3: Resources.A.Type",
        ),
    ];
    for (text, expected) in cases {
        let e = Template::parse(text, "t.yaml").unwrap_err().to_string();
        assert!(e.contains(expected), "{text:?}: {e}");
    }
}

#[test]
fn template_transform_is_unsupported() {
    let e = Template::parse(
        "Transform: AWS::Serverless-2016-10-31\nResources: {}\n",
        "t.yaml",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("Transform") && e.contains("not supported in dry-run"),
        "{e}"
    );
}

#[test]
fn from_path_reads_and_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stack.yaml");
    std::fs::write(&path, "Resources:\n  A: {Type: X}\n").unwrap();
    assert_eq!(Template::from_path(&path).unwrap().resource_ids(), ["A"]);

    let missing = dir.path().join("missing.yaml");
    let e = Template::from_path(&missing).unwrap_err().to_string();
    assert!(e.contains("missing.yaml"), "{e}");

    std::fs::write(
        &path,
        "Resources:\n  A: {Type: X, Metadata: {k: !Ref Nope}}\n",
    )
    .unwrap();
    let t = Template::from_path(&path).unwrap();
    let e = t.resource_metadata("A", &ctx()).unwrap_err().to_string();
    assert!(e.starts_with(&path.display().to_string()), "{e}");
}

#[test]
fn bom_is_ignored() {
    let t = Template::parse("\u{feff}{\"Resources\": {}}", "t.json").unwrap();
    assert!(t.resource_ids().is_empty());
}

#[test]
fn unknown_resource_is_an_error() {
    let t = with_value("1", "");
    let e = t.resource_metadata("Nope", &ctx()).unwrap_err().to_string();
    assert_eq!(e, "t.yaml: no resource 'Nope' in Resources");
}

#[test]
fn unknown_params_are_listed() {
    let t = with_value("1", PARAMS);
    let ctx = ctx_with(&[("Env", "prod"), ("Evn", "x")]);
    assert_eq!(t.unknown_params(&ctx), ["Evn"]);
    assert!(t.parameter_names().contains(&"Subnets"));
}

#[test]
fn error_stays_small() {
    // Every fallible call in the crate returns it (wrapped by the lead's error type);
    // clippy's result_large_err starts at 128 bytes.
    assert!(std::mem::size_of::<TemplateError>() <= 120);
}

// ---- Ref and parameters ----

#[test]
fn pseudo_parameters() {
    let v = ok(
        "[!Ref AWS::StackName, !Ref AWS::Region, !Ref AWS::AccountId, !Ref AWS::StackId, !Ref AWS::Partition, !Ref AWS::URLSuffix, !Ref AWS::NotificationARNs]",
        "",
    );
    assert_eq!(
        v,
        json!([
            "stack",
            "eu-west-1",
            "123456789012",
            "arn:aws:cloudformation:eu-west-1:123456789012:stack/stack/00000000-0000-0000-0000-000000000000",
            "aws",
            "amazonaws.com",
            []
        ])
    );
}

#[test]
fn fake_context_knows_other_partitions() {
    let cn = ResolveContext::fake("s", "cn-north-1");
    assert_eq!(
        (cn.partition.as_str(), cn.url_suffix.as_str()),
        ("aws-cn", "amazonaws.com.cn")
    );
    assert!(cn
        .stack_id
        .starts_with("arn:aws-cn:cloudformation:cn-north-1:"));
    assert_eq!(
        ResolveContext::fake("s", "us-gov-west-1").partition,
        "aws-us-gov"
    );
}

#[test]
fn parameter_from_param_then_default() {
    assert_eq!(ok("!Ref Env", PARAMS), json!("dev"));
    let ctx = ctx_with(&[("Env", "prod"), ("NoDefault", "given")]);
    assert_eq!(eval("!Ref Env", PARAMS, &ctx).unwrap(), json!("prod"));
    assert_eq!(
        eval("!Ref NoDefault", PARAMS, &ctx).unwrap(),
        json!("given")
    );
    // Number parameters are strings once referenced, as in CloudFormation.
    assert_eq!(ok("!Ref Count", PARAMS), json!("2"));
}

#[test]
fn parameter_without_default_names_path_and_flag() {
    assert_eq!(
        err("!Ref NoDefault", PARAMS),
        "t.yaml:31: Resources.R.Metadata.v: parameter NoDefault has no Default: pass --param NoDefault=..."
    );
}

#[test]
fn parameter_outside_allowed_values() {
    let e = eval("!Ref Env", PARAMS, &ctx_with(&[("Env", "staging")]))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("Env value 'staging'") && e.contains("AllowedValues [dev, prod]"),
        "{e}"
    );
}

#[test]
fn list_parameters_are_arrays() {
    assert_eq!(ok("!Ref Subnets", PARAMS), json!(["subnet-1", "subnet-2"]));
    assert_eq!(ok("!Ref Names", PARAMS), json!(["a", "b", "c"]));
    let ctx = ctx_with(&[("Names", "x, y")]);
    assert_eq!(eval("!Ref Names", PARAMS, &ctx).unwrap(), json!(["x", "y"]));
    let ctx = ctx_with(&[("Names", "")]);
    assert_eq!(eval("!Ref Names", PARAMS, &ctx).unwrap(), json!([]));
    assert_eq!(ok("!Join ['|', !Ref Names]", PARAMS), json!("a|b|c"));
}

#[test]
fn ssm_parameters_are_placeholders_unless_given() {
    assert_eq!(
        ok("!Ref Ami", PARAMS),
        json!("<ssm:/aws/service/ecs/optimized-ami/amazon-linux-2023/recommended/image_id>")
    );
    assert_eq!(ok("!Ref SsmList", PARAMS), json!(["<ssm:/my/list>"]));
    let ctx = ctx_with(&[("Ami", "ami-123")]);
    assert_eq!(eval("!Ref Ami", PARAMS, &ctx).unwrap(), json!("ami-123"));
    let no_default = "Parameters:\n  Ami:\n    Type: AWS::SSM::Parameter::Value<String>\n";
    assert_eq!(ok("!Ref Ami", no_default), json!("<ssm:Ami>"));
}

#[test]
fn ref_to_resource_and_unknown_name() {
    assert_eq!(ok("!Ref Other", ""), json!("<Other>"));
    assert_eq!(
        err("{a: [x, {b: !Ref Foo}]}", ""),
        "t.yaml:8: Resources.R.Metadata.v.a[1].b: Ref to unknown parameter or resource 'Foo'"
    );
    assert!(err("!Ref [a]", "").contains("Resources.R.Metadata.v: Ref needs"));
}

// ---- AWS::NoValue ----

#[test]
fn no_value_removes_keys_and_items() {
    assert_eq!(
        ok(
            "{a: !Ref AWS::NoValue, b: [1, !Ref AWS::NoValue, 2], c: 3}",
            ""
        ),
        json!({"b": [1, 2], "c": 3})
    );
    // The whole `v` key disappears.
    let t = with_value("!Ref AWS::NoValue", "");
    assert_eq!(t.resource_metadata("R", &ctx()).unwrap(), json!({}));
}

#[test]
fn no_value_is_rejected_where_a_value_is_required() {
    let e = err("!Base64 {Ref: AWS::NoValue}", "");
    assert!(
        e.contains("Resources.R.Metadata.v.Fn::Base64: AWS::NoValue cannot be used here"),
        "{e}"
    );
}

#[test]
fn no_value_inside_join_list_is_dropped() {
    assert_eq!(
        ok("!Join [',', [a, !Ref AWS::NoValue, b]]", ""),
        json!("a,b")
    );
}

// ---- GetAtt ----

#[test]
fn get_att_forms() {
    assert_eq!(
        ok("!GetAtt Other.TopicName", ""),
        json!("<Other.TopicName>")
    );
    assert_eq!(
        ok("!GetAtt Other.Endpoint.Address", ""),
        json!("<Other.Endpoint.Address>")
    );
    assert_eq!(ok("!GetAtt [Other, Arn]", ""), json!("<Other.Arn>"));
    assert_eq!(ok("{'Fn::GetAtt': 'Other.Arn'}", ""), json!("<Other.Arn>"));
    assert_eq!(
        ok("!GetAtt [Other, !Ref Env]", PARAMS),
        json!("<Other.dev>")
    );
    assert_eq!(
        err("!GetAtt Nope.Arn", ""),
        "t.yaml:8: Resources.R.Metadata.v.Fn::GetAtt: Fn::GetAtt to unknown resource 'Nope'"
    );
    assert!(err("!GetAtt [Other]", "").contains("Fn::GetAtt needs [LogicalId, Attribute]"));
}

// ---- Sub ----

#[test]
fn sub_variables() {
    assert_eq!(
        ok(
            "!Sub '${AWS::StackName}/${AWS::Region}/${Env}/${Other}/${Other.Arn}/${!Literal}/$x'",
            PARAMS
        ),
        json!("stack/eu-west-1/dev/<Other>/<Other.Arn>/${Literal}/$x")
    );
}

#[test]
fn sub_variable_map_wins_and_may_use_intrinsics() {
    assert_eq!(
        ok(
            "!Sub ['${Env}-${Name}', {Env: mine, Name: !Ref AWS::Region}]",
            PARAMS
        ),
        json!("mine-eu-west-1")
    );
    assert_eq!(ok("!Sub ['${Other.Arn}', {Other.Arn: x}]", ""), json!("x"));
}

#[test]
fn sub_edge_cases() {
    assert_eq!(ok("!Sub ''", ""), json!(""));
    assert_eq!(ok("!Sub 'no vars'", ""), json!("no vars"));
    assert_eq!(ok("!Sub '${!A}${!B.C}'", ""), json!("${A}${B.C}"));
    assert_eq!(ok("!Sub 'open ${ended'", ""), json!("open ${ended"));
    assert_eq!(ok("!Sub '${ AWS::Region }'", ""), json!("eu-west-1"));
    assert_eq!(
        ok("!Sub \"multi\\nline ${AWS::Region}\"", ""),
        json!("multi\nline eu-west-1")
    );
}

#[test]
fn sub_errors_name_the_path() {
    assert_eq!(
        err("!Sub 'x-${Nope}'", ""),
        "t.yaml:8: Resources.R.Metadata.v.Fn::Sub: Fn::Sub to unknown parameter, resource or variable 'Nope'"
    );
    assert!(err("!Sub '${Nope.Arn}'", "").contains("'Nope.Arn'"));
    assert!(err("!Sub '${AWS::Nope}'", "").contains("unknown pseudo parameter 'AWS::Nope'"));
    assert!(err("!Sub '${AWS::NotificationARNs}'", "").contains("not a string"));
    assert!(err("!Sub '${Names}'", PARAMS).contains("list parameter Names"));
    let e = err("!Sub ['${A}', {A: !Ref Nope}]", "");
    assert!(
        e.contains("Resources.R.Metadata.v.Fn::Sub[1].A: Ref to unknown"),
        "{e}"
    );
    let e = err("!Sub ['${A}', {A: [1]}]", "");
    assert!(
        e.contains("Fn::Sub[1].A: Fn::Sub needs a string here"),
        "{e}"
    );
    assert!(err("!Sub [a, b, c]", "").contains("Fn::Sub needs"));
    assert!(err("!Sub {a: b}", "").contains("Fn::Sub needs"));
    // The string itself must be literal.
    assert!(err("!Sub [!Ref Env, {}]", PARAMS).contains("Fn::Sub needs"));
}

// ---- Join, Select, Split, Base64, GetAZs, ImportValue ----

#[test]
fn join() {
    assert_eq!(
        ok("!Join ['-', [a, 1, true, !Ref Env]]", PARAMS),
        json!("a-1-true-dev")
    );
    assert_eq!(ok("!Join ['', []]", ""), json!(""));
    assert_eq!(ok("!Join [',', !Split ['|', 'a|b']]", ""), json!("a,b"));
    assert!(err("!Join [',']", "")
        .contains("Resources.R.Metadata.v.Fn::Join: Fn::Join needs [delimiter, [values...]]"));
    assert!(err("!Join [',', x]", "").contains("Fn::Join[1]: Fn::Join needs a list here"));
    assert!(err("!Join [',', [{a: 1}]]", "")
        .contains("Fn::Join[1][0]: Fn::Join values must be strings"));
}

#[test]
fn select() {
    assert_eq!(ok("!Select [1, [a, b, c]]", ""), json!("b"));
    assert_eq!(ok("!Select ['0', !GetAZs '']", ""), json!("eu-west-1a"));
    assert_eq!(ok("!Select [!Ref Count, !Ref Names]", PARAMS), json!("c"));
    assert_eq!(ok("!Select [0, [{a: 1}]]", ""), json!({"a": 1}));
    assert!(
        err("!Select [3, [a]]", "").contains("Fn::Select index 3 is out of range for a list of 1")
    );
    assert!(err("!Select [-1, [a]]", "")
        .contains("Fn::Select[0]: Fn::Select index must be a non-negative integer"));
    assert!(err("!Select [x, [a]]", "").contains("non-negative integer"));
}

#[test]
fn split() {
    assert_eq!(ok("!Split [',', 'a,,b']", ""), json!(["a", "", "b"]));
    assert_eq!(ok("!Split [',', !Ref Env]", PARAMS), json!(["dev"]));
    assert!(err("!Split ['', x]", "").contains("delimiter is empty"));
    assert!(err("!Split [',', [a]]", "").contains("Fn::Split[1]: Fn::Split needs a string"));
}

#[test]
fn base64_encodes() {
    for (input, encoded) in [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg=="),
        ("fooba", "Zm9vYmE="),
        ("foobar", "Zm9vYmFy"),
    ] {
        assert_eq!(ok(&format!("!Base64 '{input}'"), ""), json!(encoded));
    }
    assert_eq!(ok("!Base64 'é'", ""), json!("w6k="));
    assert_eq!(
        ok("{'Fn::Base64': !Sub '#!/bin/bash\n${AWS::Region}'}", ""),
        json!("IyEvYmluL2Jhc2ggZXUtd2VzdC0x")
    );
}

#[test]
fn get_azs() {
    assert_eq!(
        ok("!GetAZs ''", ""),
        json!(["eu-west-1a", "eu-west-1b", "eu-west-1c"])
    );
    assert_eq!(
        ok("!GetAZs", ""),
        json!(["eu-west-1a", "eu-west-1b", "eu-west-1c"])
    );
    assert_eq!(
        ok("!GetAZs {Ref: AWS::Region}", ""),
        json!(["eu-west-1a", "eu-west-1b", "eu-west-1c"])
    );
    assert_eq!(ok("!GetAZs us-east-2", "")[2], json!("us-east-2c"));
}

#[test]
fn import_value() {
    assert_eq!(
        ok("!ImportValue shared-vpc", ""),
        json!("<ImportValue:shared-vpc>")
    );
    assert_eq!(
        ok("!ImportValue {'Fn::Sub': '${AWS::StackName}-vpc'}", ""),
        json!("<ImportValue:stack-vpc>")
    );
}

// ---- FindInMap ----

const MAPPINGS: &str = "
Mappings:
  RegionMap:
    eu-west-1: {Ami: ami-eu, Azs: [a, b]}
    us-east-1: {Ami: ami-us}
";

#[test]
fn find_in_map() {
    assert_eq!(
        ok("!FindInMap [RegionMap, !Ref AWS::Region, Ami]", MAPPINGS),
        json!("ami-eu")
    );
    assert_eq!(
        ok("!FindInMap [RegionMap, eu-west-1, Azs]", MAPPINGS),
        json!(["a", "b"])
    );
    assert_eq!(
        ok(
            "!FindInMap [RegionMap, ap-south-1, Ami, {DefaultValue: ami-default}]",
            MAPPINGS
        ),
        json!("ami-default")
    );
}

#[test]
fn find_in_map_errors_name_the_missing_key() {
    let e = err("!FindInMap [RegionMap, us-east-1, Azs]", MAPPINGS);
    assert_eq!(
        e,
        "t.yaml:13: Resources.R.Metadata.v.Fn::FindInMap: Fn::FindInMap: mapping 'RegionMap' key 'us-east-1' has no key 'Azs'"
    );
    assert!(err("!FindInMap [RegionMap, ap-south-1, Ami]", MAPPINGS)
        .contains("has no key 'ap-south-1'"));
    assert!(err("!FindInMap [Nope, a, b]", MAPPINGS).contains("no mapping 'Nope'"));
    assert!(err("!FindInMap [RegionMap, a]", MAPPINGS).contains("Fn::FindInMap needs"));
    assert!(err("!FindInMap [RegionMap, a, b, c]", MAPPINGS).contains("DefaultValue"));
}

// ---- Conditions and Fn::If ----

const CONDITIONS: &str = "
Parameters:
  Env: {Type: String, Default: dev}
  Count: {Type: Number, Default: 1}
Conditions:
  IsProd: !Equals [!Ref Env, prod]
  IsDev: !Not [!Condition IsProd]
  OneInstance: !Equals [!Ref Count, 1]
  Both: !And [!Condition IsDev, !Condition OneInstance]
  Either: !Or [!Condition IsProd, !Equals [a, b]]
  InEu: !Equals [!Select [0, !Split ['-', !Ref AWS::Region]], eu]
";

#[test]
fn conditions_follow_parameters() {
    let v = "[!If [IsProd, p, np], !If [IsDev, d, nd], !If [OneInstance, one, many], !If [Both, both, notboth], !If [Either, e, ne], !If [InEu, eu, other]]";
    assert_eq!(
        ok(v, CONDITIONS),
        json!(["np", "d", "one", "both", "ne", "eu"])
    );
    let ctx = ctx_with(&[("Env", "prod"), ("Count", "3")]);
    assert_eq!(
        eval(v, CONDITIONS, &ctx).unwrap(),
        json!(["p", "nd", "many", "notboth", "e", "eu"])
    );
}

#[test]
fn if_with_no_value_removes_the_key() {
    assert_eq!(
        ok(
            "{a: !If [IsProd, x, !Ref AWS::NoValue], b: !If [IsDev, {c: 1}, 2]}",
            CONDITIONS
        ),
        json!({"b": {"c": 1}})
    );
    assert_eq!(
        ok("[!If [IsProd, x, !Ref AWS::NoValue], y]", CONDITIONS),
        json!(["y"])
    );
}

#[test]
fn only_the_chosen_if_branch_is_resolved() {
    assert_eq!(
        ok("!If [IsProd, !Ref Nope, fine]", CONDITIONS),
        json!("fine")
    );
}

#[test]
fn condition_functions_outside_conditions_give_booleans() {
    assert_eq!(ok("!Equals [!Ref Env, dev]", CONDITIONS), json!(true));
    assert_eq!(ok("!Not [!Equals [a, a]]", ""), json!(false));
    // As a plain key, `Condition` is data, not a function.
    assert_eq!(
        ok("{Condition: IsProd}", CONDITIONS),
        json!({"Condition": "IsProd"})
    );
}

#[test]
fn condition_errors() {
    assert_eq!(
        err("!If [Nope, a, b]", CONDITIONS),
        "t.yaml:19: Resources.R.Metadata.v.Fn::If[0]: Fn::If to unknown condition 'Nope'"
    );
    let bad = "Conditions:\n  C: !Equals [!Ref Missing, x]\n";
    assert_eq!(
        err("!If [C, a, b]", bad),
        "t.yaml:2: Conditions.C.Fn::Equals[0]: Ref to unknown parameter or resource 'Missing'"
    );
    let cycle = "Conditions:\n  A: !Condition B\n  B: !Not [!Condition A]\n";
    let e = err("!If [A, a, b]", cycle);
    assert!(e.contains("condition cycle: A -> B -> A"), "{e}");
    let shape = "Conditions:\n  C: !Equals [a]\n";
    assert!(err("!If [C, a, b]", shape).contains("Conditions.C.Fn::Equals: Fn::Equals needs"));
    let shape = "Conditions:\n  C: yes\n";
    assert!(err("!If [C, a, b]", shape).contains("Conditions.C: expected a condition function"));
    let shape = "Conditions:\n  C: !And []\n";
    assert!(err("!If [C, a, b]", shape).contains("Fn::And needs a list"));
    assert!(err("!If [IsProd, a]", CONDITIONS).contains("Fn::If needs"));
    assert!(err("!If [[IsProd], a, b]", CONDITIONS).contains("Fn::If needs a condition name"));
}

#[test]
fn and_or_report_errors_in_every_operand() {
    let c = "Conditions:\n  C: !Or [true, !Equals [!Ref Nope, x]]\n";
    assert!(err("!If [C, a, b]", c).contains("Conditions.C.Fn::Or[1].Fn::Equals[0]"));
}

#[test]
fn resource_with_false_condition_is_not_created() {
    let text = format!(
        "{CONDITIONS}\nResources:\n  R:\n    Type: X\n    Condition: IsProd\n    Metadata: {{a: 1}}\n"
    );
    let t = Template::parse(&text, "t.yaml").unwrap();
    let e = t.resource_metadata("R", &ctx()).unwrap_err().to_string();
    assert_eq!(
        e,
        "t.yaml:16: Resources.R: not created in this stack: its Condition IsProd is false"
    );
    let prod = ctx_with(&[("Env", "prod")]);
    assert_eq!(t.resource_metadata("R", &prod).unwrap(), json!({"a": 1}));
}

// ---- Length, ToJsonString, Cidr, Transform, unknown functions ----

#[test]
fn length_and_to_json_string() {
    assert_eq!(ok("!Length [a, b, !Ref AWS::NoValue]", ""), json!(2));
    assert_eq!(ok("!Length {Ref: Names}", PARAMS), json!(3));
    assert_eq!(
        ok("!ToJsonString {b: !Ref AWS::Region, a: [1, true]}", ""),
        json!(r#"{"b":"eu-west-1","a":[1,true]}"#)
    );
    assert!(err("!Length x", "").contains("Fn::Length needs a list"));
}

#[test]
fn cidr_placeholders() {
    assert_eq!(
        ok("!Cidr [!GetAtt Other.CidrBlock, 2, 8]", ""),
        json!(["<Cidr:<Other.CidrBlock>[0]>", "<Cidr:<Other.CidrBlock>[1]>"])
    );
    assert!(err("!Cidr [10.0.0.0/16, 100000, 8]", "")
        .contains("Fn::Cidr[1]: Fn::Cidr count must be 1 to 256"));
    assert!(err("!Cidr [10.0.0.0/16, 1, 0]", "").contains("cidrBits"));
}

#[test]
fn transform_and_unknown_functions() {
    let e = err(
        "!Transform {Name: AWS::Include, Parameters: {Location: s3://x}}",
        "",
    );
    assert!(
        e.contains("Resources.R.Metadata.v: Fn::Transform")
            && e.ends_with("is not supported in dry-run"),
        "{e}"
    );
    let e = err("{'Fn::Frobnicate': x}", "");
    assert_eq!(
        e,
        "t.yaml:8: Resources.R.Metadata.v: unknown intrinsic function Fn::Frobnicate"
    );
    // More than one key is ordinary data.
    assert_eq!(
        ok("{Ref: x, Other: y}", ""),
        json!({"Ref": "x", "Other": "y"})
    );
}

// ---- resolve() on fragments ----

#[test]
fn resolve_fragment() {
    let t = with_value("1", PARAMS);
    let user_data = json!({"Fn::Base64": {"Fn::Sub": "ECS_CLUSTER=${Other}\n"}});
    assert_eq!(
        t.resolve(&user_data, &ctx()).unwrap(),
        json!("RUNTX0NMVVNURVI9PE90aGVyPgo=")
    );
    assert_eq!(
        t.resolve(&json!({"Ref": "AWS::NoValue"}), &ctx()).unwrap(),
        Value::Null
    );
    let e = t
        .resolve(&json!({"Ref": "Nope"}), &ctx())
        .unwrap_err()
        .to_string();
    assert!(e.contains("(fragment): Ref to unknown"), "{e}");
    let raw = &t.raw()["Resources"]["R"]["Metadata"]["v"];
    assert_eq!(raw, &json!(1));
}

// ---- robustness ----

/// Runs `f` on a thread with tokio's default worker stack size.
fn on_small_stack(f: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new()
        .stack_size(2 * 1024 * 1024)
        .spawn(f)
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn deepest_parsable_nesting_resolves_on_a_small_stack() {
    on_small_stack(|| {
        // 120 YAML levels, each a tag: about twice as deep once converted.
        let depth = 120;
        let text = format!(
            "Resources:\n  R:\n    Type: X\n    Metadata: {}a{}\n",
            "!Select [0, [".repeat(depth / 2),
            "]]".repeat(depth / 2)
        );
        let t = Template::parse(&text, "t.yaml").unwrap();
        assert_eq!(t.resource_metadata("R", &ctx()).unwrap(), json!("a"));
    });
}

#[test]
fn hand_built_deep_values_are_rejected_not_overflowed() {
    on_small_stack(|| {
        let t = with_value("1", "");
        let mut v = json!("x");
        for _ in 0..2 * resolve::MAX_DEPTH {
            v = json!({"Fn::Base64": v});
        }
        let e = t.resolve(&v, &ctx()).unwrap_err();
        assert!(matches!(e, TemplateError::TooDeep { .. }), "{e}");
        let mut v = json!("x");
        for _ in 0..2 * resolve::MAX_DEPTH {
            v = json!([v]);
        }
        assert!(t.resolve(&v, &ctx()).is_err());
    });
}

#[test]
fn long_condition_chains_are_rejected_not_overflowed() {
    on_small_stack(|| {
        let mut conditions = String::from("Conditions:\n  C0: !Equals [a, a]\n");
        for i in 1..2000 {
            conditions.push_str(&format!("  C{i}: !Not [!Condition C{}]\n", i - 1));
        }
        let e = eval("!If [C1999, a, b]", &conditions, &ctx()).unwrap_err();
        assert!(matches!(e, TemplateError::TooDeep { .. }), "{e}");
        // A short chain is fine.
        assert_eq!(
            eval("!If [C3, a, b]", &conditions, &ctx()).unwrap(),
            json!("b")
        );
    });
}

#[test]
fn wrong_types_everywhere_are_errors_not_panics() {
    let junk = [
        "null",
        "1",
        "x",
        "[]",
        "[1, 2, 3, 4, 5]",
        "{}",
        "{a: 1}",
        "[[], {}]",
        "true",
    ];
    let functions = [
        "Ref",
        "GetAtt",
        "Sub",
        "Join",
        "Select",
        "Split",
        "Base64",
        "GetAZs",
        "ImportValue",
        "If",
        "Equals",
        "And",
        "Or",
        "Not",
        "FindInMap",
        "Cidr",
        "Length",
        "ToJsonString",
        "Condition",
    ];
    for f in functions {
        for j in junk {
            let text = format!(
                "Conditions:\n  C: !{f} {j}\nResources:\n  R:\n    Type: X\n    Condition: C\n    Metadata:\n      v: !{f} {j}\n"
            );
            // `!GetAtt x` without a dot fails already at parse time.
            if let Ok(t) = Template::parse(&text, "t.yaml") {
                let _ = t.resource_metadata("R", &ctx());
            }
        }
    }
}

// ---- a realistic template ----

const LAUNCH_CONFIG: &str = r#"
AWSTemplateFormatVersion: '2010-09-09'
Description: ECS container instances
Parameters:
  InstanceType:
    Type: String
    Default: t3.medium
  LatestAmi:
    Type: AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>
    Default: /aws/service/ecs/optimized-ami/amazon-linux-2023/recommended/image_id
  Environment:
    Type: String
    AllowedValues: [staging, production]
    Default: staging
  Subnets:
    Type: List<AWS::EC2::Subnet::Id>
Conditions:
  IsProduction: !Equals [!Ref Environment, production]
Mappings:
  EnvSettings:
    staging: {LogRetention: 7}
    production: {LogRetention: 90}
Resources:
  ApplicationCluster:
    Type: AWS::ECS::Cluster
  InstanceRole:
    Type: AWS::IAM::Role
  LaunchConfiguration:
    Type: AWS::AutoScaling::LaunchConfiguration
    Metadata:
      AWS::CloudFormation::Init:
        configSets:
          default: [ecs]
        ecs:
          files:
            /etc/ecs/ecs.config:
              content: !Sub |
                ECS_CLUSTER=${ApplicationCluster}
                ECS_ENABLE_CONTAINER_METADATA=true
              mode: '000644'
              owner: root
          commands:
            01_tag:
              command: !Join [' ', [echo, !Ref 'AWS::StackName', !GetAtt InstanceRole.Arn]]
      ecs-bootstrap:
        Cluster: !Ref ApplicationCluster
        GroupPrefix: !Sub ${AWS::StackName}/ec2/X
        LogRetentionDays: !FindInMap [EnvSettings, !Ref Environment, LogRetention]
        DrainTimeout: 300
        Verbose: !If [IsProduction, !Ref 'AWS::NoValue', true]
        Signal:
          Resource: AutoScalingGroup
          Stack: !Ref AWS::StackId
    Properties:
      ImageId: !Ref LatestAmi
      InstanceType: !Ref InstanceType
      UserData:
        Fn::Base64: !Sub |
          #!/bin/bash
          ecs-bootstrap --stack ${AWS::StackName} --resource LaunchConfiguration --region ${AWS::Region}
  AutoScalingGroup:
    Type: AWS::AutoScaling::AutoScalingGroup
    Properties:
      VPCZoneIdentifier: !Ref Subnets
      LaunchConfigurationName: !Ref LaunchConfiguration
"#;

#[test]
fn launch_configuration_metadata() {
    let t = Template::parse(LAUNCH_CONFIG, "ecs.yaml").unwrap();
    assert_eq!(
        t.resource_ids(),
        [
            "ApplicationCluster",
            "InstanceRole",
            "LaunchConfiguration",
            "AutoScalingGroup"
        ]
    );
    assert_eq!(
        t.resource_type("LaunchConfiguration"),
        Some("AWS::AutoScaling::LaunchConfiguration")
    );
    let ctx = ResolveContext::fake("stack", "eu-west-1");
    let meta = t.resource_metadata("LaunchConfiguration", &ctx).unwrap();
    assert_eq!(
        meta,
        json!({
            "AWS::CloudFormation::Init": {
                "configSets": {"default": ["ecs"]},
                "ecs": {
                    "files": {
                        "/etc/ecs/ecs.config": {
                            "content": "ECS_CLUSTER=<ApplicationCluster>\nECS_ENABLE_CONTAINER_METADATA=true\n",
                            "mode": "000644",
                            "owner": "root"
                        }
                    },
                    "commands": {"01_tag": {"command": "echo stack <InstanceRole.Arn>"}}
                }
            },
            "ecs-bootstrap": {
                "Cluster": "<ApplicationCluster>",
                "GroupPrefix": "stack/ec2/X",
                "LogRetentionDays": 7,
                "DrainTimeout": 300,
                "Verbose": true,
                "Signal": {
                    "Resource": "AutoScalingGroup",
                    "Stack": "arn:aws:cloudformation:eu-west-1:123456789012:stack/stack/00000000-0000-0000-0000-000000000000"
                }
            }
        })
    );
    // Key order survives resolution.
    let keys: Vec<_> = meta["ecs-bootstrap"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(
        keys,
        [
            "Cluster",
            "GroupPrefix",
            "LogRetentionDays",
            "DrainTimeout",
            "Verbose",
            "Signal"
        ]
    );

    let mut prod = ctx.clone();
    prod.params
        .insert("Environment".into(), "production".into());
    let meta = t.resource_metadata("LaunchConfiguration", &prod).unwrap();
    assert_eq!(meta["ecs-bootstrap"]["LogRetentionDays"], json!(90));
    assert!(meta["ecs-bootstrap"].get("Verbose").is_none());

    // UserData via the raw template + resolve.
    let user_data = &t.raw()["Resources"]["LaunchConfiguration"]["Properties"]["UserData"];
    let encoded = t.resolve(user_data, &ctx).unwrap();
    assert_eq!(encoded.as_str().map(str::len), Some(120));

    // A typo is reported at its line.
    let typo = LAUNCH_CONFIG.replace(
        "Cluster: !Ref ApplicationCluster",
        "Cluster: !Ref AppCluster",
    );
    let line = 1 + LAUNCH_CONFIG
        .lines()
        .position(|l| l.contains("Cluster: !Ref ApplicationCluster"))
        .unwrap();
    let t2 = Template::parse(&typo, "ecs.yaml").unwrap();
    assert_eq!(
        t2.resource_metadata("LaunchConfiguration", &ctx).unwrap_err().to_string(),
        format!("ecs.yaml:{line}: Resources.LaunchConfiguration.Metadata.ecs-bootstrap.Cluster: Ref to unknown parameter or resource 'AppCluster'")
    );

    // The ASG needs Subnets, which has no Default.
    let asg = &t.raw()["Resources"]["AutoScalingGroup"]["Properties"];
    let e = t.resolve(asg, &ctx).unwrap_err().to_string();
    assert_eq!(
        e,
        "ecs.yaml: (fragment).VPCZoneIdentifier: parameter Subnets has no Default: pass --param Subnets=..."
    );
}

// ---- never panic: generated and mutated inputs ----

/// A small deterministic generator (xorshift), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

/// A random flow-style YAML node mixing every tag with junk of every shape.
fn random_node(rng: &mut Rng, depth: usize) -> String {
    const SCALARS: &[&str] = &[
        "a",
        "''",
        "'1'",
        "1",
        "-1",
        "true",
        "~",
        "Env",
        "L",
        "R",
        "R.Arn",
        "AWS::Region",
        "AWS::NoValue",
        "AWS::NotificationARNs",
        "C",
        "D",
        "M",
        "'${Env}-${R.Arn}'",
        "'${!x}'",
        "'${'",
        "'${AWS::NoValue}'",
        "'${L}'",
        "eu",
        "','",
        "'10.0.0.0/16'",
        "300",
        "é",
    ];
    const TAGS: &[&str] = &[
        "!Ref",
        "!Sub",
        "!GetAtt",
        "!Join",
        "!Select",
        "!Split",
        "!Base64",
        "!GetAZs",
        "!ImportValue",
        "!If",
        "!Equals",
        "!And",
        "!Or",
        "!Not",
        "!FindInMap",
        "!Condition",
        "!Cidr",
        "!Length",
        "!ToJsonString",
        "!Transform",
        "!Bogus",
    ];
    const KEYS: &[&str] = &[
        "a",
        "Ref",
        "Fn::Sub",
        "Condition",
        "Fn::Join",
        "DefaultValue",
        "Fn::If",
    ];
    let choice = if depth == 0 { 0 } else { rng.below(4) };
    match choice {
        0 => rng.pick(SCALARS).to_string(),
        1 => {
            let n = rng.below(5);
            let items: Vec<_> = (0..n).map(|_| random_node(rng, depth - 1)).collect();
            format!("[{}]", items.join(", "))
        }
        2 => {
            let n = rng.below(3);
            let mut keys: Vec<&str> = (0..n).map(|_| rng.pick(KEYS)).collect();
            keys.dedup();
            let entries: Vec<_> = keys
                .iter()
                .map(|k| format!("'{k}': {}", random_node(rng, depth - 1)))
                .collect();
            format!("{{{}}}", entries.join(", "))
        }
        _ => {
            let tag = rng.pick(TAGS);
            // A tag directly on a tagged node is not YAML; wrap it in a list instead.
            let inner = random_node(rng, depth - 1);
            if inner.starts_with('!') {
                format!("{tag} [{inner}]")
            } else {
                format!("{tag} {inner}")
            }
        }
    }
}

#[test]
fn random_templates_never_panic() {
    on_small_stack(|| {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut resolved = 0;
        for _ in 0..3000 {
            let text = format!(
                "Parameters: {{Env: {{Type: String, Default: dev}}, L: {{Type: CommaDelimitedList, Default: 'a,b'}}}}\n\
                 Mappings: {{M: {{a: {{b: [1, 2]}}, eu: {{a: x}}}}}}\n\
                 Conditions: {{C: {}, D: !Equals [a, a]}}\n\
                 Resources: {{R: {{Type: X, Condition: D, Metadata: {{v: {}, w: {}}}}}}}\n",
                random_node(&mut rng, 3),
                random_node(&mut rng, 4),
                random_node(&mut rng, 4),
            );
            if let Ok(t) = Template::parse(&text, "t.yaml") {
                if t.resource_metadata("R", &ctx()).is_ok() {
                    resolved += 1;
                }
                let _ = t.resolve(
                    &json!({"Fn::If": ["C", {"Ref": "R"}, {"Ref": "AWS::NoValue"}]}),
                    &ctx(),
                );
            }
        }
        // The generator must reach the resolver, not just the parser.
        assert!(resolved > 100, "only {resolved} resolved");
    });
}

#[test]
fn mutated_templates_never_panic() {
    let mut rng = Rng(42);
    let chars: Vec<char> = LAUNCH_CONFIG.chars().collect();
    const NOISE: &[&str] = &[
        "!", "{", "}", "[", "]", ":", " ", "\n", "-", "'", "\"", "$", "é", "\t", ",",
    ];
    for _ in 0..1500 {
        let mut mutated = chars.clone();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(mutated.len());
            match rng.below(3) {
                0 => {
                    mutated.remove(at);
                }
                1 => mutated.insert(at, rng.pick(NOISE).chars().next().unwrap_or(' ')),
                _ => mutated.truncate(at),
            }
        }
        let text: String = mutated.into_iter().collect();
        for json in [false, true] {
            let text = if json {
                // Same mutations through the JSON path.
                match Template::parse(&text, "t.yaml") {
                    Ok(t) => serde_json::to_string_pretty(t.raw()).unwrap(),
                    Err(_) => continue,
                }
            } else {
                text.clone()
            };
            if let Ok(t) = Template::parse(&text, "t") {
                for id in t.resource_ids() {
                    let _ = t.resource_metadata(id, &ctx());
                }
            }
        }
    }
}

// ---- issue 8: small inputs must not expand without bound -------------------------------

#[test]
fn sub_of_a_large_parameter_many_times_stops_at_the_budget() {
    // A 64 KiB Default used 4096 times in one Fn::Sub: 256 MiB from a ~80 KB template.
    let big = "x".repeat(64 << 10);
    let extra = format!("Parameters:\n  Big:\n    Type: String\n    Default: {big}\n");
    let sub = "${Big}".repeat(4096);
    let e = eval(&format!("!Sub '{sub}'"), &extra, &ctx()).unwrap_err();
    assert!(matches!(e, TemplateError::TooLarge { .. }), "{e}");
    assert!(e.to_string().contains("Resources.R.Metadata.v"), "{e}");
}

#[test]
fn join_and_ref_fan_out_stops_at_the_budget() {
    let big = "y".repeat(64 << 10);
    let extra = format!("Parameters:\n  Big:\n    Type: String\n    Default: {big}\n");
    let refs = vec!["!Ref Big"; 1024].join(", ");
    let e = eval(&format!("[{refs}]"), &extra, &ctx()).unwrap_err();
    assert!(matches!(e, TemplateError::TooLarge { .. }), "{e}");
    // The separator repeated over a long list is counted before the join allocates.
    let e = eval(
        &format!("!Join [!Ref Big, !Split [',', '{}']]", ",".repeat(1024)),
        &extra,
        &ctx(),
    )
    .unwrap_err();
    assert!(matches!(e, TemplateError::TooLarge { .. }), "{e}");
}

#[test]
fn deep_json_is_refused_without_the_yaml_fallback() {
    // serde_json stops at 128 levels; the YAML parser would then take quadratic time.
    let text = "{\"Resources\": ".to_string() + &"[".repeat(80_000);
    let started = std::time::Instant::now();
    let e = Template::parse(&text, "deep.json").unwrap_err().to_string();
    assert!(
        e.contains("invalid JSON") && e.contains("recursion limit"),
        "{e}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
}

#[test]
fn an_oversized_template_is_refused_before_parsing() {
    let text = format!("Resources: {{}}\n#{}\n", " ".repeat(MAX_TEMPLATE_BYTES));
    let e = Template::parse(&text, "big.yaml").unwrap_err();
    assert!(matches!(e, TemplateError::TooBig { .. }), "{e}");
}
