"""Run moto's AWS emulator on loopback for the preflight tests, with EC2 quotas and AMI parameters.

Usage: moto_preflight.py --port PORT [--host 127.0.0.1] [--public-parameters FILE]

`sandboxctl preflight` reads five services; moto 5.2.5 serves three of them as AWS does (EC2
DescribeAvailabilityZones and DescribeInstanceTypeOfferings from its snapshot of real offerings,
ACM DescribeCertificate, Route 53 GetHostedZone and ListResourceRecordSets) and lacks what the
other two need, and its IAM signature check refuses every bodiless request. This launcher adds
or fixes only that, and leaves everything else moto unchanged:

Service Quotas. moto implements quotas for service code "vpc" only
(moto/servicequotas/models.py): GetServiceQuota for any ec2 code answers
NoSuchResourceException, ListAWSDefaultServiceQuotas knows no ec2 quota, and
GetAWSDefaultServiceQuota and RequestServiceQuotaIncrease are not implemented at all. Added, for
the three EC2 vCPU quotas a department uses:
  - GetAWSDefaultServiceQuota and ListAWSDefaultServiceQuotas answer the AWS defaults below.
  - RequestServiceQuotaIncrease applies the desired value at once and answers status APPROVED
    (AWS opens a case that is reviewed, sometimes for days; tests need the outcome, not the wait).
  - GetServiceQuota answers the applied value once an increase was requested; before that it
    keeps moto's NoSuchResourceException, which is the answer preflight must handle by falling
    back to the AWS default.
  State lives on moto's per-account, per-region backend, so /moto-api/reset clears it.

SSM public parameters. AWS publishes the AMI parameters under /aws/service/ in every account
of a region; moto serves a few trees there (ami-amazon-linux-latest, global-infrastructure,
ecs) but neither the Deep Learning AMI nor Canonical's Ubuntu parameters, and its PutParameter
refuses names that start with "aws" as AWS does. --public-parameters names a JSON file
{"<region>": {"<parameter name>": "<value>"}}; each is published in that region, in every
account, the first time anything under /aws/service/ is read there. A region or name the file
leaves out is absent, as a parameter AWS does not publish in a region is.

Signatures of bodiless requests. Once /moto-api/reset-auth turns IAM authentication on, moto
recomputes each request's SigV4 signature over `body or data` (moto/iam/access_control.py,
IAMRequestBase._create_aws_request). A request without a body, such as Route 53's
GET /2013-04-01/hostedzone/{Id}, has the empty payload, which is what every SDK signs; but moto's
`data` for it is a dict (the headers, or the query parameters), which botocore form-encodes
and hashes as the payload, so a correctly signed GET is refused with SignatureDoesNotMatch
(boto3 is refused the same way). Fixed: a request without a body is checked over the empty
payload (Content-Length 0 or absent). Requests with a body are checked as before.

CloudWatch percentiles. moto computes Sum, Average, Minimum, Maximum and SampleCount
(moto/cloudwatch/models.py, Statistics.get_statistics_for_type) and answers None for a percentile
statistic such as p95, which its GetMetricData response then fails to serialize (HTTP 500 for the
whole request). Added: pNN over the raw values published in the period, by nearest rank (the
smallest value at or above which NN % of the values lie). CloudWatch computes percentiles over
its own value distribution, so tests use values whose percentiles do not depend on the method.

Runs until SIGTERM or SIGINT, then stops the server and exits 0.
"""

import argparse
import json
import math
import re
import sys
from collections import defaultdict

from moto.cloudwatch.models import Statistics
from moto.core.utils import utcnow
from moto.iam.access_control import IAMRequestBase
from moto.servicequotas.exceptions import NoSuchResource
from moto.servicequotas.models import ServiceQuotasBackend
from moto.servicequotas.responses import ServiceQuotasResponse
from moto.ssm.models import Parameter, ParameterDict

# The launcher beside this one (python puts the script's folder first on sys.path).
from moto_server import serve

EC2_SERVICE_NAME = "Amazon Elastic Compute Cloud (Amazon EC2)"

# The AWS default values, in vCPUs. L-1216C47A's 5 is what GetAWSDefaultServiceQuota answers in
# the AWS CLI reference's example (`aws service-quotas get-aws-default-service-quota
# --service-code ec2 --quota-code L-1216C47A`); the G and VT quotas are 0 on new accounts.
# L-34B43A08 (standard spot) mirrors the on-demand standard default: no example stack has a
# spot CPU pool, and no test depends on its value.
EC2_DEFAULT_QUOTAS = {
    "L-1216C47A": ("Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances", 5.0),
    "L-DB2E81BA": ("Running On-Demand G and VT instances", 0.0),
    "L-3819A6DF": ("All G and VT Spot Instance Requests", 0.0),
    "L-34B43A08": ("All Standard (A, C, D, H, I, M, R, T, Z) Spot Instance Requests", 5.0),
}


def _ec2_quota(code, value, region, account=""):
    name, _ = EC2_DEFAULT_QUOTAS[code]
    return {
        "ServiceCode": "ec2",
        "ServiceName": EC2_SERVICE_NAME,
        # Default quotas have no account in their ARN; applied ones do.
        "QuotaArn": f"arn:aws:servicequotas:{region}:{account}:ec2/{code}",
        "QuotaCode": code,
        "QuotaName": name,
        "Value": value,
        "Unit": "None",
        "Adjustable": True,
        "GlobalQuota": False,
    }


def _applied(backend):
    if not hasattr(backend, "llm_sandbox_ec2_applied"):
        backend.llm_sandbox_ec2_applied = {}
    return backend.llm_sandbox_ec2_applied


def _patch_service_quotas():
    original_get = ServiceQuotasBackend.get_service_quota
    original_list = ServiceQuotasBackend.list_aws_default_service_quotas

    def get_service_quota(self, service_code, quota_code):
        if service_code != "ec2":
            return original_get(self, service_code, quota_code)
        value = _applied(self).get(quota_code)
        if value is None:
            raise NoSuchResource
        return _ec2_quota(quota_code, value, self.region_name, self.account_id)

    def get_aws_default_service_quota(self, service_code, quota_code):
        if service_code == "ec2" and quota_code in EC2_DEFAULT_QUOTAS:
            return _ec2_quota(quota_code, EC2_DEFAULT_QUOTAS[quota_code][1], self.region_name)
        for quota in original_list(self, service_code):
            if quota["QuotaCode"] == quota_code:
                return quota
        raise NoSuchResource

    def list_aws_default_service_quotas(self, service_code):
        if service_code == "ec2":
            return [_ec2_quota(c, v, self.region_name) for c, (_, v) in EC2_DEFAULT_QUOTAS.items()]
        return original_list(self, service_code)

    def request_service_quota_increase(self, service_code, quota_code, desired_value):
        if service_code != "ec2" or quota_code not in EC2_DEFAULT_QUOTAS:
            raise NoSuchResource
        _applied(self)[quota_code] = float(desired_value)
        now = utcnow().timestamp()
        return {
            "Id": f"llm-sandbox-{quota_code}-{int(now * 1000)}",
            "ServiceCode": "ec2",
            "ServiceName": EC2_SERVICE_NAME,
            "QuotaCode": quota_code,
            "QuotaName": EC2_DEFAULT_QUOTAS[quota_code][0],
            "DesiredValue": float(desired_value),
            "Status": "APPROVED",
            "Created": now,
            "LastUpdated": now,
            "Requester": self.account_id,
            "QuotaArn": f"arn:aws:servicequotas:{self.region_name}:{self.account_id}:ec2/{quota_code}",
            "GlobalQuota": False,
            "Unit": "None",
        }

    ServiceQuotasBackend.get_service_quota = get_service_quota
    ServiceQuotasBackend.get_aws_default_service_quota = get_aws_default_service_quota
    ServiceQuotasBackend.list_aws_default_service_quotas = list_aws_default_service_quotas
    ServiceQuotasBackend.request_service_quota_increase = request_service_quota_increase

    def respond_get_aws_default_service_quota(self):
        params = json.loads(self.body)
        quota = self.backend.get_aws_default_service_quota(
            str(params.get("ServiceCode")), str(params.get("QuotaCode"))
        )
        return json.dumps({"Quota": quota})

    def respond_request_service_quota_increase(self):
        params = json.loads(self.body)
        requested = self.backend.request_service_quota_increase(
            str(params.get("ServiceCode")), str(params.get("QuotaCode")), params.get("DesiredValue")
        )
        return json.dumps({"RequestedQuota": requested})

    ServiceQuotasResponse.get_aws_default_service_quota = respond_get_aws_default_service_quota
    ServiceQuotasResponse.request_service_quota_increase = respond_request_service_quota_increase


def _patch_public_parameters(published):
    original_check = ParameterDict._check_loading_status

    def check_loading_status(self, key):
        original_check(self, key)
        key = str(key or "")
        if not key.startswith("/aws/service/") or getattr(self, "llm_sandbox_published", False):
            return
        self.llm_sandbox_published = True
        for name, value in published.get(self.region_name, {}).items():
            # defaultdict's own __getitem__: ParameterDict's would come back here.
            defaultdict.__getitem__(self, name).append(
                Parameter(
                    account_id=self.account_id,
                    name=name,
                    value=value,
                    parameter_type="String",
                    description=None,
                    allowed_pattern=None,
                    keyid=None,
                    last_modified_date=utcnow(),
                    version=1,
                    data_type="text",
                )
            )

    ParameterDict._check_loading_status = check_loading_status


def _patch_bodiless_signature():
    original_create = IAMRequestBase._create_aws_request

    def create_aws_request(self):
        request = original_create(self)
        # Content-Length, not self._body: for a form-encoded POST (EC2, IAM) werkzeug has
        # already read the body into the form, so self._body is empty and moto's dict of form
        # fields is what reproduces the payload.
        if int(self._headers.get("Content-Length") or 0) == 0:
            # The empty payload, as the client signed it; not moto's dict of headers or
            # query parameters.
            request.data = b""
        return request

    IAMRequestBase._create_aws_request = create_aws_request


PERCENTILE = re.compile(r"^p(\d{1,2}(\.\d+)?)$")


def _patch_percentiles():
    original = Statistics.get_statistics_for_type

    def get_statistics_for_type(self, stat):
        m = PERCENTILE.match(stat)
        if not m:
            return original(self, stat)
        values = sorted(self.metric_single_values_list)
        if not values:
            return None
        rank = max(1, math.ceil(float(m.group(1)) / 100 * len(values)))
        return values[rank - 1]

    Statistics.get_statistics_for_type = get_statistics_for_type


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (loopback)")
    parser.add_argument("--port", type=int, required=True, help="port to bind")
    parser.add_argument("--public-parameters", help="JSON file of the public SSM parameters per region")
    args = parser.parse_args()

    published = {}
    if args.public_parameters:
        with open(args.public_parameters, encoding="utf-8") as f:
            published = json.load(f)
    _patch_service_quotas()
    _patch_public_parameters(published)
    _patch_bodiless_signature()
    _patch_percentiles()
    return serve(args.host, args.port)


if __name__ == "__main__":
    sys.exit(main())
