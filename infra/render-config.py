#!/usr/bin/env python3
"""Prints the TOML config template.yaml gives both functions
(Globals.Function.Environment.Variables.S3LOADER_CONFIG_TOML) as
CloudFormation would render it, for parameter values given as NAME=VALUE
(the rest take their defaults; resources become placeholders). check.sh
feeds the result to `s3loader check`, so a template whose config the
loader would refuse fails before anyone deploys it.

    infra/render-config.py Warehouse=redshift RedshiftClusterId=c1 ...
"""

import re
import sys

from cfnlint.decode import decode_str

template, _ = decode_str(open(sys.argv[0].rsplit("/", 1)[0] + "/template.yaml").read())
params = {k: str(v.get("Default", "")) for k, v in template["Parameters"].items()}
params.update(a.split("=", 1) for a in sys.argv[1:])
params.update({"AWS::Region": "eu-west-2", "AWS::AccountId": "123456789012", "AWS::Partition": "aws"})
conditions = {}


def condition(name):
    if name not in conditions:
        conditions[name] = truth(template["Conditions"][name])
    return conditions[name]


def truth(expr):
    (fn, args), = expr.items()
    if fn == "Fn::Equals":
        return value(args[0]) == value(args[1])
    if fn == "Fn::Not":
        return not truth(args[0])
    if fn == "Fn::And":
        return all(truth(a) for a in args)
    if fn == "Fn::Or":
        return any(truth(a) for a in args)
    if fn == "Condition":
        return condition(args)
    raise ValueError(fn)


def placeholder(name):
    if name in params:
        return params[name]
    if name.endswith(".Arn"):
        return "arn:aws:iam::123456789012:role/placeholder-" + name[:-4]
    return "placeholder-" + name.lower()


def value(expr):
    if isinstance(expr, str):
        return expr
    (fn, args), = expr.items()
    if fn == "Ref":
        return placeholder(args)
    if fn == "Fn::Sub":
        return re.sub(r"\$\{([^}]+)\}", lambda m: placeholder(m.group(1)), args)
    if fn == "Fn::Join":
        return args[0].join(value(a) for a in args[1])
    if fn == "Fn::If":
        return value(args[1] if condition(args[0]) else args[2])
    raise ValueError(fn)


print(value(template["Globals"]["Function"]["Environment"]["Variables"]["S3LOADER_CONFIG_TOML"]))
