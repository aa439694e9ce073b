//! Every built-in rule finds a realistic (made-up) credential and stays
//! quiet on a look-alike. The credentials are generated here from a fixed
//! seed; none is live.

use coffer_scan::{Config, Origin, Scanner};

const ALNUM: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const UPPER32: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const HEX: &str = "0123456789abcdef";
const B64URL: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
const B64: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const LOWER: &str = "abcdefghijklmnopqrstuvwxyz";
const BECH32: &str = "QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L";
const LETTERS: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const UPALNUM: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
const LOWALNUM: &str = "abcdefghijklmnopqrstuvwxyz0123456789";
const DIGITS: &str = "0123456789";
const UPHEX: &str = "0123456789ABCDEF";

/// `n` characters from `alphabet`, pseudo-random from `seed`.
fn r(alphabet: &str, n: usize, seed: u64) -> String {
    let a: Vec<char> = alphabet.chars().collect();
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            a[((x >> 33) % a.len() as u64) as usize]
        })
        .collect()
}

/// A made-up UUID (lower-case hex), pseudo-random from `seed`.
fn uuid(seed: u64) -> String {
    format!(
        "{}-{}-{}-{}-{}",
        r(HEX, 8, seed),
        r(HEX, 4, seed + 1000),
        r(HEX, 4, seed + 2000),
        r(HEX, 4, seed + 3000),
        r(HEX, 12, seed + 4000)
    )
}

/// (rule, text with a finding whose secret is `secret`, secret, look-alike)
fn cases() -> Vec<(&'static str, String, String, String)> {
    let mut v = Vec::new();
    let mut add = |rule: &'static str, text: String, secret: String, fp: String| {
        v.push((rule, text, secret, fp));
    };
    let s = format!("AKIA{}", r(UPPER32, 16, 1));
    add(
        "aws-access-token",
        format!("aws_access_key_id = {s}\n"),
        s,
        "AKIAEXAMPLE is a doc placeholder\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\n".into(),
    );
    let s = r(B64, 40, 2);
    add(
        "aws-secret-access-key",
        format!("aws_secret_access_key = \"{s}\"\n"),
        s,
        "aws_secret_access_key = ${AWS_SECRET}\naws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n".into(),
    );
    let s = format!("AIza{}", r(B64URL, 35, 3));
    add(
        "gcp-api-key",
        format!("key: {s}\n"),
        s,
        "AIza is the prefix of Google API keys\n".into(),
    );
    let s = r(HEX, 40, 4);
    add(
        "gcp-service-account",
        format!(
            "{{\"type\": \"service_account\", \"project_id\": \"p\", \"private_key_id\": \"{s}\"}}\n"
        ),
        s,
        "{\"type\": \"service_account\", \"private_key_id\": \"\"}\n".into(),
    );
    let s = format!("{}==", r(B64, 86, 5));
    add(
        "azure-storage-account-key",
        format!(
            "DefaultEndpointsProtocol=https;AccountName=x;AccountKey={s};EndpointSuffix=core.windows.net\n"
        ),
        s,
        "AccountKey=<your key here>\n".into(),
    );
    let s = format!("{}8Q~{}", r(ALNUM, 3, 6), r(ALNUM, 34, 7));
    add(
        "azure-ad-client-secret",
        format!("client_secret: {s}\n"),
        s,
        "see Q~ notation in the docs\n".into(),
    );
    let s = format!("dop_v1_{}", r(HEX, 64, 8));
    add(
        "digitalocean-token",
        format!("DO_TOKEN={s}\n"),
        s,
        "dop_v1_ tokens are 64 hex characters\n".into(),
    );
    let s = format!("ghp_{}", r(ALNUM, 36, 9));
    add(
        "github-pat",
        format!("GITHUB_TOKEN={s}\n"),
        s,
        "ghp_ is followed by 36 characters\n".into(),
    );
    let s = format!("github_pat_{}", r(&(ALNUM.to_owned() + "_"), 82, 10));
    add(
        "github-fine-grained-pat",
        format!("token: {s}\n"),
        s,
        "github_pat_example\n".into(),
    );
    let s = format!("gho_{}", r(ALNUM, 36, 11));
    add("github-oauth", format!("{s}\n"), s, "gho_short\n".into());
    let s = format!("ghs_{}", r(ALNUM, 36, 12));
    add(
        "github-app-token",
        format!("Authorization: token {s}\n"),
        s,
        "ghs_tooShort123\n".into(),
    );
    let s = format!("ghr_{}", r(ALNUM, 76, 13));
    add(
        "github-refresh-token",
        format!("refresh={s}\n"),
        s,
        "ghr_x\n".into(),
    );
    let s = format!("glpat-{}", r(B64URL, 20, 14));
    add(
        "gitlab-pat",
        format!("GITLAB_TOKEN={s}\n"),
        s,
        "glpat-xxxx\n".into(),
    );
    let s = format!("glrt-{}", r(B64URL, 20, 15));
    add(
        "gitlab-runner-token",
        format!("token = \"{s}\"\n"),
        s,
        "glrt-abc\n".into(),
    );
    let s = format!("glptt-{}", r(HEX, 40, 16));
    add(
        "gitlab-pipeline-trigger-token",
        format!("curl -F token={s}\n"),
        s,
        "glptt-0123\n".into(),
    );
    let s = format!("ATBB{}", r(ALNUM, 28, 17));
    add(
        "bitbucket-app-password",
        format!("password: {s}\n"),
        s,
        "ATBB short\n".into(),
    );
    let s = format!("npm_{}", r(ALNUM, 36, 18));
    add(
        "npm-access-token",
        format!("//registry.npmjs.org/:_authToken={s}\n"),
        s,
        "npm_config_cache=/tmp\n".into(),
    );
    let s = format!("pypi-AgEIcHlwaS5vcmc{}", r(B64URL, 60, 19));
    add(
        "pypi-upload-token",
        format!("password = {s}\n"),
        s,
        "pypi-AgEIcHlwaS5vcmc\n".into(),
    );
    let s = format!("rubygems_{}", r(HEX, 48, 20));
    add(
        "rubygems-api-key",
        format!(":rubygems_api_key: {s}\n"),
        s,
        "rubygems_version: 3\n".into(),
    );
    let s = format!("dckr_pat_{}", r(B64URL, 27, 21));
    add(
        "dockerhub-pat",
        format!("DOCKER_PASSWORD={s}\n"),
        s,
        "dckr_pat_\n".into(),
    );
    let s = format!(
        "xoxb-{}-{}-{}",
        r("0123456789", 12, 22),
        r("0123456789", 13, 23),
        r(ALNUM, 24, 24)
    );
    add(
        "slack-bot-token",
        format!("SLACK_BOT_TOKEN={s}\n"),
        s,
        "xoxb-your-token\n".into(),
    );
    let s = format!(
        "xoxp-{}-{}-{}-{}",
        r("0123456789", 12, 25),
        r("0123456789", 12, 26),
        r("0123456789", 13, 27),
        r(HEX, 32, 28)
    );
    add(
        "slack-user-token",
        format!("{s}\n"),
        s,
        "xoxp-1-2-3-abc\n".into(),
    );
    let s = format!(
        "https://hooks.slack.com/services/T{}/B{}/{}",
        r(UPPER32, 8, 29),
        r(UPPER32, 10, 30),
        r(ALNUM, 24, 31)
    );
    add(
        "slack-webhook-url",
        format!("url: {s}\n"),
        s,
        "https://hooks.slack.com/services/T000/B000/XXXX\n".into(),
    );
    let s = format!(
        "https://discord.com/api/webhooks/{}/{}",
        r("0123456789", 18, 32),
        r(B64URL, 68, 33)
    );
    add(
        "discord-webhook-url",
        format!("hook = \"{s}\"\n"),
        s,
        "https://discord.com/api/webhooks/123/abc\n".into(),
    );
    let s = format!("{}:AA{}", r("0123456789", 10, 34), r(B64URL, 33, 35));
    add(
        "telegram-bot-token",
        format!("TELEGRAM_TOKEN={s}\n"),
        s,
        "time 12:AA is not a token\n".into(),
    );
    let s = format!("sk_live_{}", r(ALNUM, 24, 36));
    add(
        "stripe-secret-key",
        format!("Stripe.api_key = '{s}'\n"),
        s,
        "sk_live_ keys start like this\n".into(),
    );
    let s = format!("EAAA{}", r(B64URL, 60, 37));
    add(
        "square-access-token",
        format!("SQUARE_TOKEN={s}\n"),
        s,
        "EAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n".into(),
    );
    let s = format!("sq0csp-{}", r(B64URL, 43, 38));
    add(
        "square-oauth-secret",
        format!("secret: {s}\n"),
        s,
        "sq0csp-\n".into(),
    );
    let s = format!(
        "access_token$production${}${}",
        r("abcdefghijklmnopqrstuvwxyz0123456789", 16, 39),
        r(HEX, 32, 40)
    );
    add(
        "braintree-access-token",
        format!("BT={s}\n"),
        s,
        "access_token$production$\n".into(),
    );
    let s = format!("SG.{}.{}", r(B64URL, 22, 41), r(B64URL, 43, 42));
    add(
        "sendgrid-api-key",
        format!("SENDGRID_API_KEY={s}\n"),
        s,
        "sg.example.com\n".into(),
    );
    let s = format!("key-{}", r(HEX, 32, 43));
    add(
        "mailgun-api-key",
        format!("MAILGUN_KEY={s}\n"),
        s,
        "primary-key-rotation\n".into(),
    );
    let s = format!("SK{}", r(HEX, 32, 44));
    add(
        "twilio-api-key",
        format!("TWILIO_API_KEY={s}\n"),
        s,
        "twilio sid SKIPPED\n".into(),
    );
    let s = r(HEX, 32, 45);
    add(
        "datadog-api-key",
        format!("DATADOG_API_KEY={s}\n"),
        s,
        "datadog: enabled\n".into(),
    );
    let s = format!("NRAK-{}", r("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", 27, 46));
    add(
        "new-relic-user-key",
        format!("NEW_RELIC_API_KEY={s}\n"),
        s,
        "NRAK-XXXX\n".into(),
    );
    let s = format!("sntrys_eyJ{}", r(B64URL, 80, 47));
    add(
        "sentry-org-token",
        format!("SENTRY_AUTH_TOKEN={s}\n"),
        s,
        "sntrys_\n".into(),
    );
    let s = format!("sntryu_{}", r(HEX, 64, 48));
    add(
        "sentry-user-token",
        format!("auth.token={s}\n"),
        s,
        "sntryu_abc\n".into(),
    );
    let s = format!("sk-proj-{}T3BlbkFJ{}", r(B64URL, 40, 49), r(B64URL, 40, 50));
    add(
        "openai-api-key",
        format!("OPENAI_API_KEY={s}\n"),
        s,
        "sk-proj-placeholder\n".into(),
    );
    let s = format!("sk-ant-api03-{}AA", r(B64URL, 93, 51));
    add(
        "anthropic-api-key",
        format!("ANTHROPIC_API_KEY={s}\n"),
        s,
        "sk-ant-api03-...\n".into(),
    );
    let s = format!(
        "hf_{}",
        r(&(LOWER.to_owned() + "ABCDEFGHIJKLMNOPQRSTUVWXYZ"), 34, 52)
    );
    add(
        "huggingface-token",
        format!("HF_TOKEN={s}\n"),
        s,
        "hf_hub_download(repo)\n".into(),
    );
    let s = format!("shpat_{}", r(HEX, 32, 53));
    add(
        "shopify-token",
        format!("SHOPIFY_TOKEN={s}\n"),
        s,
        "shpat_\n".into(),
    );
    let s = format!("ATATT3{}", r(B64URL, 186, 54));
    add(
        "atlassian-api-token",
        format!("JIRA_TOKEN={s}\n"),
        s,
        "ATATT3xFfGF0\n".into(),
    );
    let s = format!("dp.st.{}", r(ALNUM, 43, 55));
    add(
        "doppler-token",
        format!("DOPPLER_TOKEN={s}\n"),
        s,
        "dp.st.dev\n".into(),
    );
    let s = format!("ops_eyJ{}", r(B64, 300, 56));
    add(
        "onepassword-service-account",
        format!("OP_SERVICE_ACCOUNT_TOKEN={s}\n"),
        s,
        "ops_eyJ\n".into(),
    );
    let s = format!("dapi{}", r(HEX, 32, 57));
    add(
        "databricks-token",
        format!("DATABRICKS_TOKEN={s}\n"),
        s,
        "dapi_version: 2\n".into(),
    );
    let s = format!("hvs.{}", r(ALNUM, 24, 58));
    add(
        "vault-service-token",
        format!("VAULT_TOKEN={s}\n"),
        s,
        "hvs.placeholder\n".into(),
    );
    let s = format!("cvs.{}", r(ALNUM, 24, 59));
    add(
        "coffer-token",
        format!("COFFER_TOKEN={s}\n"),
        s,
        "cvs.short\n".into(),
    );
    let s = format!("AGE-SECRET-KEY-1{}", r(BECH32, 58, 60));
    add(
        "age-secret-key",
        format!("# created\n{s}\n"),
        s,
        "AGE-SECRET-KEY-1 lines hold identities\n".into(),
    );
    let body: String = (0..8).map(|i| r(B64, 64, 61 + i) + "\n").collect();
    let s = format!("-----BEGIN RSA PRIVATE KEY-----\n{body}-----END RSA PRIVATE KEY-----");
    add(
        "private-key",
        format!("{s}\n"),
        s,
        "-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----\n".into(),
    );
    let s = format!(
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ{}.{}",
        r(B64URL, 40, 70),
        r(B64URL, 43, 71)
    );
    add(
        "jwt",
        format!("Authorization: Bearer {s}\n"),
        s,
        "eyJhbGciOiJIUzI1NiJ9 alone is a header\n".into(),
    );
    let s = r(ALNUM, 20, 72);
    add(
        "database-url-password",
        format!("DATABASE_URL=postgres://app:{s}@db.internal:5432/app\n"),
        s,
        "DATABASE_URL=postgres://app:${DB_PASSWORD}@db:5432/app\nlike user:pass@tcp(h)/ or mysql://user:pass@host:port/\nformat!(\"mysql://{user}:{pw}@127.0.0.1:3306/test\")\n".into(),
    );
    let s = r(ALNUM, 24, 73);
    add(
        "generic-secret-assignment",
        format!("db_password = \"{s}\"\n"),
        s,
        "password = \"changeme-placeholder\"\nsecret_key = settings.secret.key\nMountKind::Secret => PROTECTED_PREFIXES.iter().any(|p| p)\nAPI_KEY = DEFAULT_API_KEY_NAME\ntoken_stream: __IncompleteArrayField\n\
         .secret\t= curve25519_compute_shared_secret,\n.pwd = &sifive_fu540_prci_corepll_data,\n\
         pwdn: regulator-fec1-pwdn\npwdown\t\t= GPIO105_HX4700_nIR_ON,\ncase TOKEN_VERBOSE:\n\t\tqla1280_verbose\n\
         private_key = OSSL_STORE_INFO_get1_PKEY(info);\n\
         \ti2c_priv->wake_token_sz = atmel_i2c_wake_token_sz(bus_clk_rate);\n".into(),
    );
    // An unquoted token shaped like a constant's name, digits all through.
    let s = format!("ACME_{}", r(UPALNUM, 24, 74));
    add(
        "generic-secret-assignment",
        format!("auth_token = {s}\n"),
        s,
        "auth_token = SHA256_DIGEST_LENGTH_MAX\nsecret = AES_256_GCM_TAG_SIZE\n".into(),
    );
    let s = format!("HRKU-{}", r(B64URL, 60, 100));
    add(
        "heroku-api-key",
        format!("HEROKU_API_KEY={s}\n"),
        s,
        "HRKU-short\n".into(),
    );
    let s = format!("{}-us{}", r(HEX, 32, 101), 14);
    add(
        "mailchimp-api-key",
        format!("MAILCHIMP_KEY={s}\n"),
        s,
        "campaign-us14 region\n".into(),
    );
    let s = format!("00{}", r(B64URL, 40, 102));
    add(
        "okta-api-token",
        format!("OKTA_API_TOKEN={s}\n"),
        s,
        "okta: 0000000000000000000000000000000000000000\n".into(),
    );
    let s = format!("lin_api_{}", r(ALNUM, 40, 103));
    add(
        "linear-api-key",
        format!("LINEAR_API_KEY={s}\n"),
        s,
        "lin_api_\n".into(),
    );
    let s = format!("PMAK-{}-{}", r(HEX, 24, 104), r(HEX, 34, 105));
    add(
        "postman-api-key",
        format!("x-api-key: {s}\n"),
        s,
        "PMAK-abc\n".into(),
    );
    let s = format!("glc_{}", r(B64, 60, 106));
    add(
        "grafana-cloud-token",
        format!("GRAFANA_TOKEN={s}\n"),
        s,
        "glc_x\n".into(),
    );
    let s = format!("glsa_{}_{}", r(ALNUM, 32, 107), r(HEX, 8, 108));
    add(
        "grafana-service-account-token",
        format!("token: {s}\n"),
        s,
        "glsa_x_y\n".into(),
    );
    let s = format!("fo1_{}", r(B64URL, 43, 109));
    add(
        "flyio-token",
        format!("FLY_API_TOKEN={s}\n"),
        s,
        "fo1_\n".into(),
    );
    let s = format!("pul-{}", r(HEX, 40, 110));
    add(
        "pulumi-token",
        format!("PULUMI_ACCESS_TOKEN={s}\n"),
        s,
        "pul-request\n".into(),
    );
    let s = format!("{}.atlasv1.{}", r(ALNUM, 14, 111), r(B64URL, 67, 112));
    add(
        "terraform-cloud-token",
        format!("token = \"{s}\"\n"),
        s,
        "atlasv1 is the token format\n".into(),
    );
    let s = format!("whsec_{}", r(ALNUM, 32, 113));
    add(
        "stripe-webhook-secret",
        format!("STRIPE_WEBHOOK_SECRET={s}\n"),
        s,
        "whsec_...\n".into(),
    );
    let s = format!("gldt-{}", r(B64URL, 20, 114));
    add(
        "gitlab-deploy-token",
        format!("password: {s}\n"),
        s,
        "gldt-\n".into(),
    );
    let s = format!("glft-{}", r(B64URL, 20, 115));
    add(
        "gitlab-feed-token",
        format!("feed_token={s}\n"),
        s,
        "glft-x\n".into(),
    );
    let s = format!("gloas-{}", r(HEX, 64, 116));
    add(
        "gitlab-oauth-secret",
        format!("secret: {s}\n"),
        s,
        "gloas-\n".into(),
    );
    let s = format!("glcbt-{}_{}", r(HEX, 2, 117), r(B64URL, 20, 118));
    add(
        "gitlab-ci-build-token",
        format!("CI_JOB_TOKEN={s}\n"),
        s,
        "glcbt-\n".into(),
    );
    let s = format!("glagent-{}", r(B64URL, 50, 119));
    add(
        "gitlab-agent-token",
        format!("token: {s}\n"),
        s,
        "glagent-config\n".into(),
    );
    let s = format!("aio_{}", r(ALNUM, 28, 120));
    add(
        "adafruit-io-key",
        format!("ADAFRUIT_IO_KEY={s}\n"),
        s,
        "aio_key\n".into(),
    );
    let s = format!("pat{}.{}", r(ALNUM, 14, 121), r(HEX, 64, 122));
    add(
        "airtable-pat",
        format!("AIRTABLE_TOKEN={s}\n"),
        s,
        "pattern.matches\n".into(),
    );
    let s = format!(
        "CLOJARS_{}",
        r("abcdefghijklmnopqrstuvwxyz0123456789", 60, 123)
    );
    add(
        "clojars-token",
        format!("CLOJARS_PASSWORD={s}\n"),
        s,
        "CLOJARS_USERNAME=me\n".into(),
    );
    let s = format!("duffel_test_{}", r(B64URL, 43, 124));
    add(
        "duffel-api-token",
        format!("DUFFEL_TOKEN={s}\n"),
        s,
        "duffel_test_\n".into(),
    );
    let s = format!(
        "dt0c01.{}.{}",
        r("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", 24, 125),
        r("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", 64, 126)
    );
    add(
        "dynatrace-api-token",
        format!("DT_API_TOKEN={s}\n"),
        s,
        "dt0c01.ABC\n".into(),
    );
    let s = format!("EZAK{}", r("abcdefghijklmnopqrstuvwxyz0123456789", 54, 127));
    add(
        "easypost-api-key",
        format!("EASYPOST_API_KEY={s}\n"),
        s,
        "EZAK\n".into(),
    );
    let s = format!("fio-u-{}", r(B64URL, 64, 128));
    add(
        "frameio-token",
        format!("FRAMEIO_TOKEN={s}\n"),
        s,
        "fio-u-\n".into(),
    );
    let s = format!("ico-{}", r(ALNUM, 32, 129));
    add(
        "infracost-api-key",
        format!("INFRACOST_API_KEY={s}\n"),
        s,
        "ico-file.png\n".into(),
    );
    let s = format!("sk.eyJ{}.{}", r(B64URL, 60, 130), r(B64URL, 22, 131));
    add(
        "mapbox-secret-token",
        format!("MAPBOX_TOKEN={s}\n"),
        s,
        "sk.eyJ\n".into(),
    );
    let s = format!("pscale_pw_{}", r(B64URL, 43, 132));
    add(
        "planetscale-token",
        format!("DATABASE_PASSWORD={s}\n"),
        s,
        "pscale_pw_\n".into(),
    );
    let s = format!("pnu_{}", r(ALNUM, 36, 133));
    add(
        "prefect-api-key",
        format!("PREFECT_API_KEY={s}\n"),
        s,
        "pnu_\n".into(),
    );
    let s = format!(
        "rdme_{}",
        r("abcdefghijklmnopqrstuvwxyz0123456789", 70, 134)
    );
    add(
        "readme-api-key",
        format!("README_API_KEY={s}\n"),
        s,
        "rdme_\n".into(),
    );
    let s = format!("shippo_live_{}", r(HEX, 40, 135));
    add(
        "shippo-api-token",
        format!("SHIPPO_TOKEN={s}\n"),
        s,
        "shippo_live_\n".into(),
    );
    let s = format!("sgp_{}_{}", r(HEX, 16, 136), r(HEX, 40, 137));
    add(
        "sourcegraph-token",
        format!("SRC_ACCESS_TOKEN={s}\n"),
        s,
        "sgp_\n".into(),
    );
    let s = format!("tfp_{}", r(B64URL, 59, 138));
    add(
        "typeform-token",
        format!("TYPEFORM_TOKEN={s}\n"),
        s,
        "tfp_\n".into(),
    );
    let s = format!("FLWSECK_TEST-{}-X", r(HEX, 32, 139));
    add(
        "flutterwave-secret-key",
        format!("FLW_SECRET_KEY={s}\n"),
        s,
        "FLWSECK_TEST-\n".into(),
    );
    let s = format!("LTAI{}", r(ALNUM, 20, 140));
    add(
        "alibaba-access-key-id",
        format!("ALIBABA_CLOUD_ACCESS_KEY_ID={s}\n"),
        s,
        "LTAI\n".into(),
    );
    let s = format!("sha256~{}", r(B64URL, 43, 141));
    add(
        "openshift-token",
        format!("oc login --token={s}\n"),
        s,
        "image@sha256:abc\n".into(),
    );
    let s = format!("oy2{}", r("abcdefghijklmnopqrstuvwxyz0123456789", 43, 142));
    add(
        "nuget-api-key",
        format!("NUGET_API_KEY={s}\n"),
        s,
        "oy2\n".into(),
    );
    let s = format!("NRII-{}", r(B64URL, 32, 143));
    add(
        "new-relic-insert-key",
        format!("NEW_RELIC_INSERT_KEY={s}\n"),
        s,
        "NRII-\n".into(),
    );
    let s = format!("GOCSPX-{}", r(B64URL, 28, 144));
    add(
        "gcp-oauth-client-secret",
        format!("\"client_secret\": \"{s}\"\n"),
        s,
        "GOCSPX-\n".into(),
    );
    let s = format!("1//0{}", r(B64URL, 60, 145));
    add(
        "google-oauth-refresh-token",
        format!("refresh_token={s}\n"),
        s,
        "see http://0.0.0.0\n".into(),
    );
    let s = format!(
        "xapp-1-A{}-{}-{}",
        r("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", 10, 146),
        r("0123456789", 13, 147),
        r(HEX, 64, 148)
    );
    add(
        "slack-app-token",
        format!("SLACK_APP_TOKEN={s}\n"),
        s,
        "xapp-1-\n".into(),
    );
    let body: String = (0..6).map(|i| r(B64, 64, 150 + i) + "\n").collect();
    let s = format!(
        "PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\nPublic-Lines: 2\n{body}Private-MAC: {}",
        r(HEX, 64, 160)
    );
    add(
        "putty-private-key",
        format!("{s}\n"),
        s,
        "PuTTY-User-Key-File-3: is the header of .ppk files\n".into(),
    );
    let s = r(ALNUM, 16, 161);
    add(
        "jdbc-url-password",
        format!("url=jdbc:postgresql://db:5432/app?user=app&password={s}\n"),
        s,
        "url=jdbc:postgresql://db:5432/app?user=app\n".into(),
    );
    let s = format!("AKCp{}", r(ALNUM, 69, 162));
    add(
        "artifactory-token",
        format!("ARTIFACTORY_API_KEY={s}\n"),
        s,
        "AKCp\n".into(),
    );
    let s = r("abcdefghijklmnopqrstuvwxyz234567", 52, 163);
    add(
        "azure-devops-pat",
        format!("AZURE_DEVOPS_PAT={s}\n"),
        s,
        "azure-devops pipeline ran\n".into(),
    );
    let s = r(B64URL, 40, 164);
    add(
        "cloudflare-api-token",
        format!("CLOUDFLARE_API_TOKEN={s}\n"),
        s,
        "cloudflare: enabled\n".into(),
    );
    let s = format!("glsoat-{}", r(ALNUM, 20, 301));
    add(
        "gitlab-scim-token",
        format!("GITLAB_SCIM_TOKEN={s}\n"),
        s,
        "glsoat-short\n".into(),
    );
    let s = format!("glimt-{}", r(ALNUM, 25, 302));
    add(
        "gitlab-incoming-mail-token",
        format!("incoming_email_token: {s}\n"),
        s,
        "glimt-token-here\n".into(),
    );
    let s = format!("glffct-{}", r(ALNUM, 20, 303));
    add(
        "gitlab-feature-flag-client-token",
        format!("UNLEASH_INSTANCE_ID={s}\n"),
        s,
        "glffct-\n".into(),
    );
    let s = format!("GR1348941{}", r(ALNUM, 20, 304));
    add(
        "gitlab-runner-registration-token",
        format!("--registration-token {s}\n"),
        s,
        "GR1348941 is the prefix\n".into(),
    );
    let s = format!("ATCTT3xFfGN0{}", r(ALNUM, 180, 305));
    add(
        "bitbucket-access-token",
        format!("BITBUCKET_TOKEN={s}\n"),
        s,
        "ATCTT3xFfGN0short\n".into(),
    );
    let s = r(HEX, 40, 306);
    add(
        "gitea-token",
        format!("GITEA_TOKEN={s}\n"),
        s,
        "gitea commit 0000000000000000000000000000000000000000\n".into(),
    );
    let s = format!("cio{}", r(ALNUM, 32, 307));
    add(
        "crates-io-token",
        format!("CARGO_REGISTRY_TOKEN={s}\n"),
        s,
        "ciosomething short\n".into(),
    );
    let s = format!("squ_{}", r(HEX, 40, 308));
    add(
        "sonarqube-token",
        format!("SONAR_TOKEN={s}\n"),
        s,
        "sqp_short\n".into(),
    );
    let s = format!("CCIPAT_{}_{}", r(ALNUM, 22, 309), r(HEX, 40, 310));
    add(
        "circleci-pat",
        format!("CIRCLE_TOKEN={s}\n"),
        s,
        "CCIPAT_example\n".into(),
    );
    let s = format!("bkua_{}", r(HEX, 40, 311));
    add(
        "buildkite-token",
        format!("BUILDKITE_API_TOKEN={s}\n"),
        s,
        "bkua_\n".into(),
    );
    let s = format!(
        "pat.{}.{}.{}",
        r(ALNUM, 22, 312),
        r(HEX, 24, 313),
        r(ALNUM, 20, 314)
    );
    add(
        "harness-pat",
        format!("HARNESS_TOKEN={s}\n"),
        s,
        "see pat.example.com\n".into(),
    );
    let s = format!("eyJrIjoi{}", r(ALNUM, 80, 315));
    add(
        "grafana-api-key",
        format!("GRAFANA_API_KEY={s}\n"),
        s,
        "eyJrIjoi\n".into(),
    );
    let s = r(ALNUM, 36, 316);
    add(
        "npmrc-auth-token",
        format!("//registry.example.org/:_authToken={s}\n"),
        s,
        "//registry.npmjs.org/:_authToken=${NPM_TOKEN}\n".into(),
    );
    let s = format!("{}==", r(B64, 30, 317));
    add(
        "docker-config-auth",
        format!("{{\"auths\": {{\"ghcr.io\": {{\"auth\": \"{s}\"}}}}}}\n"),
        s,
        "{\"auths\": {\"ghcr.io\": {\"auth\": \"\"}}}\n".into(),
    );
    let s = format!("xoxs-1234567890-1234567890123-{}", r(ALNUM, 32, 318));
    add(
        "slack-legacy-token",
        format!("SLACK_TOKEN={s}\n"),
        s,
        "xoxa-example\n".into(),
    );
    let s = format!(
        "M{}.{}.{}",
        r(ALNUM, 23, 319),
        r(ALNUM, 6, 320),
        r(ALNUM, 27, 321)
    );
    add(
        "discord-bot-token",
        format!("DISCORD_BOT_TOKEN={s}\n"),
        s,
        "discord token: MTIz.short.x\n".into(),
    );
    let s = format!(
        "https://contoso.webhook.office.com/webhookb2/{}@{}/IncomingWebhook/{}/{}",
        uuid(322),
        uuid(323),
        r(ALNUM, 32, 324),
        uuid(325)
    );
    add(
        "teams-webhook-url",
        format!("url: {s}\n"),
        s,
        "https://contoso.webhook.office.com/webhookb2/\n".into(),
    );
    let s = format!(
        "https://chat.googleapis.com/v1/spaces/{}/messages?key=AIza{}&token={}",
        r(ALNUM, 11, 326),
        r(ALNUM, 35, 327),
        r(ALNUM, 43, 328)
    );
    add(
        "google-chat-webhook-url",
        format!("WEBHOOK={s}\n"),
        s,
        "https://chat.googleapis.com/v1/spaces/AAAA/messages\n".into(),
    );
    let s = format!(
        "https://hooks.zapier.com/hooks/catch/{}/{}/",
        r(DIGITS, 8, 329),
        r(LOWALNUM, 7, 330)
    );
    add(
        "zapier-webhook-url",
        format!("ZAP={s}\n"),
        s,
        "https://hooks.zapier.com/hooks/catch/\n".into(),
    );
    let s = format!("AAAAAAAAAAAAAAAAAAAAAM{}", r(ALNUM, 90, 331));
    add(
        "twitter-bearer-token",
        format!("TWITTER_BEARER_TOKEN={s}\n"),
        s,
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n".into(),
    );
    let s = format!("EAAG{}", r(ALNUM, 120, 332));
    add(
        "facebook-access-token",
        format!("FB_TOKEN={s}\n"),
        s,
        "EAAG is a prefix\n".into(),
    );
    let s = format!("IGQV{}", r(ALNUM, 140, 333));
    add(
        "instagram-access-token",
        format!("IG_TOKEN={s}\n"),
        s,
        "IGQV token\n".into(),
    );
    let s = format!("oauth:{}", r(LOWALNUM, 30, 334));
    add(
        "twitch-oauth-token",
        format!("TWITCH_PASS={s}\n"),
        s,
        "oauth:token\n".into(),
    );
    let s = format!("RGAPI-{}", uuid(335));
    add(
        "riot-games-api-key",
        format!("RIOT_KEY={s}\n"),
        s,
        "RGAPI-key\n".into(),
    );
    let s = r(UPHEX, 32, 336);
    add(
        "steam-web-api-key",
        format!("STEAM_API_KEY={s}\n"),
        s,
        "steam id 00000000000000000000000000000000\n".into(),
    );
    let s = format!("IQoJb3JpZ2luX2Vj{}", r(B64, 200, 337));
    add(
        "aws-session-token",
        format!("aws_session_token = {s}\n"),
        s,
        "aws_session_token = ${AWS_SESSION_TOKEN}\n".into(),
    );
    let s = format!("amzn.mws.{}", uuid(338));
    add(
        "amazon-mws-key",
        format!("MWS_AUTH_TOKEN={s}\n"),
        s,
        "amzn.mws.example\n".into(),
    );
    let s = format!("amzn1.oa2-cs.v1.{}", r(HEX, 64, 339));
    add(
        "amazon-lwa-client-secret",
        format!("LWA_CLIENT_SECRET={s}\n"),
        s,
        "amzn1.oa2-cs.v1.\n".into(),
    );
    let s = format!("ya29.{}", r(ALNUM, 150, 340));
    add(
        "gcp-oauth-access-token",
        format!("Authorization: Bearer {s}\n"),
        s,
        "ya29.example\n".into(),
    );
    let s = format!("AAAA{}:APA91b{}", r(ALNUM, 7, 341), r(ALNUM, 134, 342));
    add(
        "firebase-cloud-messaging-key",
        format!("FCM_SERVER_KEY={s}\n"),
        s,
        "registration id :APA91bxyz\n".into(),
    );
    let s = format!("{}=", r(B64, 43, 343));
    add(
        "azure-shared-access-key",
        format!(
            "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=root;SharedAccessKey={s}\n"
        ),
        s,
        "SharedAccessKey=<key>\n".into(),
    );
    let s = format!("{}=", r(B64, 43, 344));
    add(
        "azure-app-configuration-secret",
        format!("Endpoint=https://cfg.azconfig.io;Id=AbCd-l0-s0:Xyz;Secret={s}\n"),
        s,
        "Endpoint=https://cfg.azconfig.io;Id=x;Secret=\n".into(),
    );
    let s = format!("{}%3D", r(ALNUM, 43, 345));
    add(
        "azure-sas-token",
        format!(
            "https://acct.blob.core.windows.net/c/f?sv=2022-11-02&ss=b&srt=sco&sp=r&se=2026-01-01T00:00:00Z&spr=https&sig={s}\n"
        ),
        s,
        "https://example.org/?sig=short\n".into(),
    );
    let s = r(ALNUM, 30, 346);
    add(
        "alibaba-access-key-secret",
        format!("ALIBABA_CLOUD_ACCESS_KEY_SECRET={s}\n"),
        s,
        "aliyun secret: see the console\n".into(),
    );
    let s = format!("AKID{}", r(ALNUM, 32, 347));
    add(
        "tencent-cloud-secret-id",
        format!("TENCENTCLOUD_SECRET_ID={s}\n"),
        s,
        "AKID prefix\n".into(),
    );
    let s = r(ALNUM, 44, 348);
    add(
        "ibm-cloud-api-key",
        format!("IBMCLOUD_API_KEY={s}\n"),
        s,
        "ibm api key: none\n".into(),
    );
    let s = format!("v1.0-{}-{}", r(HEX, 24, 349), r(HEX, 146, 350));
    add(
        "cloudflare-origin-ca-key",
        format!("CF_ORIGIN_CA_KEY={s}\n"),
        s,
        "version v1.0-beta\n".into(),
    );
    let s = r(ALNUM, 32, 351);
    add(
        "fastly-api-token",
        format!("FASTLY_API_TOKEN={s}\n"),
        s,
        "fastly: cdn\n".into(),
    );
    let s = r(HEX, 64, 352);
    add(
        "linode-token",
        format!("LINODE_TOKEN={s}\n"),
        s,
        "linode region us-east\n".into(),
    );
    let s = r(UPALNUM, 36, 353);
    add(
        "vultr-api-key",
        format!("VULTR_API_KEY={s}\n"),
        s,
        "vultr plan vc2-1c-1gb\n".into(),
    );
    let s = r(ALNUM, 64, 354);
    add(
        "hetzner-cloud-token",
        format!("HCLOUD_TOKEN={s}\n"),
        s,
        "hcloud server create\n".into(),
    );
    let s = uuid(355);
    add(
        "scaleway-secret-key",
        format!("SCW_SECRET_KEY={s}\n"),
        s,
        "scaleway secret key: set SCW_SECRET_KEY\n".into(),
    );
    let s = format!("tskey-auth-{}-{}", r(ALNUM, 12, 356), r(ALNUM, 30, 357));
    add(
        "tailscale-key",
        format!("TS_AUTHKEY={s}\n"),
        s,
        "tskey-auth-XXXX\n".into(),
    );
    let s = format!("{}_{}", r(ALNUM, 27, 358), r(ALNUM, 21, 359));
    add(
        "ngrok-authtoken",
        format!("NGROK_AUTHTOKEN={s}\n"),
        s,
        "ngrok http 8080\n".into(),
    );
    let s = format!("LS0tLS1CRUdJTi{}=", r(B64, 120, 360));
    add(
        "kubeconfig-client-key",
        format!("    client-key-data: {s}\n"),
        s,
        "    client-key-data: REDACTED\n".into(),
    );
    let s = format!("nfp_{}", r(ALNUM, 36, 361));
    add(
        "netlify-pat",
        format!("NETLIFY_AUTH_TOKEN={s}\n"),
        s,
        "nfp_short\n".into(),
    );
    let s = format!("rnd_{}", r(ALNUM, 32, 362));
    add(
        "render-api-key",
        format!("RENDER_API_KEY={s}\n"),
        s,
        "rnd_seed\n".into(),
    );
    let s = format!("sbp_{}", r(HEX, 40, 363));
    add(
        "supabase-access-token",
        format!("SUPABASE_ACCESS_TOKEN={s}\n"),
        s,
        "sbp_\n".into(),
    );
    let s = format!("sb_secret_{}", r(ALNUM, 31, 364));
    add(
        "supabase-secret-key",
        format!("SUPABASE_SECRET_KEY={s}\n"),
        s,
        "sb_secret_short\n".into(),
    );
    let s = format!("napi_{}", r(LOWALNUM, 64, 365));
    add(
        "neon-api-key",
        format!("NEON_API_KEY={s}\n"),
        s,
        "napi_schedule(&priv->napi);\n".into(),
    );
    let s = format!("st.{}.{}.{}", uuid(366), r(HEX, 32, 367), r(HEX, 32, 368));
    add(
        "infisical-service-token",
        format!("INFISICAL_TOKEN={s}\n"),
        s,
        "infisical st.example\n".into(),
    );
    let s = format!(
        "A3-{}-{}-{}-{}-{}-{}",
        r(UPALNUM, 6, 369),
        r(UPALNUM, 6, 370),
        r(UPALNUM, 5, 371),
        r(UPALNUM, 5, 372),
        r(UPALNUM, 5, 373),
        r(UPALNUM, 5, 374)
    );
    add(
        "onepassword-secret-key",
        format!("OP_SECRET_KEY={s}\n"),
        s,
        "paper size A3-ISO\n".into(),
    );
    let s = r(HEX, 32, 375);
    add(
        "twilio-auth-token",
        format!("TWILIO_AUTH_TOKEN={s}\n"),
        s,
        "twilio_auth_token = 00000000000000000000000000000000\n".into(),
    );
    let s = format!("md-{}", r(ALNUM, 22, 376));
    add(
        "mandrill-api-key",
        format!("MANDRILL_KEY={s}\n"),
        s,
        "mandrill md-short\n".into(),
    );
    let s = format!("NRJS-{}", r(HEX, 19, 377));
    add(
        "new-relic-browser-key",
        format!("NEW_RELIC_BROWSER_KEY={s}\n"),
        s,
        "NRJS-\n".into(),
    );
    let s = format!("{}NRAL", r(HEX, 36, 378));
    add(
        "new-relic-license-key",
        format!("NEW_RELIC_LICENSE_KEY={s}\n"),
        s,
        "NRAL license\n".into(),
    );
    let s = format!("api_org_{}", r(LETTERS, 34, 379));
    add(
        "huggingface-org-token",
        format!("HF_ORG_TOKEN={s}\n"),
        s,
        "api_org_id\n".into(),
    );
    let s = uuid(380);
    add(
        "heroku-api-key-uuid",
        format!("HEROKU_API_KEY={s}\n"),
        s,
        "heroku app web-1\n".into(),
    );
    let s = format!("E{}", r(ALNUM, 79, 381));
    add(
        "paypal-client-secret",
        format!("PAYPAL_CLIENT_SECRET={s}\n"),
        s,
        "paypal_client_secret = ${PAYPAL_SECRET}\n".into(),
    );
    let s = r(HEX, 30, 382);
    add(
        "plaid-secret",
        format!("PLAID_SECRET={s}\n"),
        s,
        "plaid secret: see dashboard\n".into(),
    );
    let s = r(ALNUM, 24, 383);
    add(
        "razorpay-key-secret",
        format!("RAZORPAY_KEY_SECRET={s}\n"),
        s,
        "razorpay secret\n".into(),
    );
    let s = format!("live_{}", r(ALNUM, 40, 384));
    add(
        "gocardless-access-token",
        format!("GOCARDLESS_ACCESS_TOKEN={s}\n"),
        s,
        "gocardless live_\n".into(),
    );
    let s = format!("pat-na1-{}", uuid(385));
    add(
        "hubspot-private-app-token",
        format!("HUBSPOT_TOKEN={s}\n"),
        s,
        "pat-na1-\n".into(),
    );
    let s = r(ALNUM, 40, 386);
    add(
        "zendesk-api-token",
        format!("ZENDESK_API_TOKEN={s}\n"),
        s,
        "zendesk ticket 1234\n".into(),
    );
    let s = format!("dG9rOj{}=", r(ALNUM, 54, 387));
    add(
        "intercom-access-token",
        format!("INTERCOM_TOKEN={s}\n"),
        s,
        "dG9rOj\n".into(),
    );
    let s = r(HEX, 32, 388);
    add(
        "algolia-admin-key",
        format!("ALGOLIA_ADMIN_KEY={s}\n"),
        s,
        "algolia index products\n".into(),
    );
    let s = format!("CFPAT-{}", r(ALNUM, 43, 389));
    add(
        "contentful-pat",
        format!("CONTENTFUL_MANAGEMENT_TOKEN={s}\n"),
        s,
        "CFPAT-\n".into(),
    );
    let s = format!("sdk-{}", uuid(390));
    add(
        "launchdarkly-access-token",
        format!("LAUNCHDARKLY_SDK_KEY={s}\n"),
        s,
        "launchdarkly sdk-key\n".into(),
    );
    let s = format!("u+{}", r(ALNUM, 18, 391));
    add(
        "pagerduty-api-key",
        format!("PAGERDUTY_TOKEN={s}\n"),
        s,
        "pagerduty: on-call\n".into(),
    );
    let s = uuid(392);
    add(
        "opsgenie-api-key",
        format!("OPSGENIE_API_KEY={s}\n"),
        s,
        "opsgenie team ops\n".into(),
    );
    let s = r(HEX, 32, 393);
    add(
        "rollbar-access-token",
        format!("ROLLBAR_ACCESS_TOKEN={s}\n"),
        s,
        "rollbar level error\n".into(),
    );
    let s = r(HEX, 32, 394);
    add(
        "bugsnag-api-key",
        format!("BUGSNAG_API_KEY={s}\n"),
        s,
        "bugsnag notify\n".into(),
    );
    let s = uuid(395);
    add(
        "splunk-hec-token",
        format!("SPLUNK_HEC_TOKEN={s}\n"),
        s,
        "splunk index main\n".into(),
    );
    let s = uuid(396);
    add(
        "snyk-token",
        format!("SNYK_TOKEN={s}\n"),
        s,
        "snyk test --all-projects\n".into(),
    );
    let s = uuid(397);
    add(
        "postmark-server-token",
        format!("POSTMARK_SERVER_TOKEN={s}\n"),
        s,
        "postmark template welcome\n".into(),
    );
    let s = format!("re_{}_{}", r(ALNUM, 8, 398), r(ALNUM, 24, 399));
    add(
        "resend-api-key",
        format!("RESEND_API_KEY={s}\n"),
        s,
        "resend re_short\n".into(),
    );
    let s = format!("xkeysib-{}-{}", r(HEX, 64, 400), r(ALNUM, 16, 401));
    add(
        "brevo-api-key",
        format!("BREVO_API_KEY={s}\n"),
        s,
        "xkeysib-\n".into(),
    );
    let s = r(HEX, 40, 402);
    add(
        "sparkpost-api-key",
        format!("SPARKPOST_API_KEY={s}\n"),
        s,
        "sparkpost region eu\n".into(),
    );
    let s = r(HEX, 32, 403);
    add(
        "mailjet-api-key",
        format!("MAILJET_API_SECRET={s}\n"),
        s,
        "mailjet sender\n".into(),
    );
    let s = format!("KEY{}_{}", r(UPHEX, 32, 404), r(ALNUM, 22, 405));
    add(
        "telnyx-api-key",
        format!("TELNYX_API_KEY={s}\n"),
        s,
        "KEY0_SHORT\n".into(),
    );
    let s = r(ALNUM, 16, 406);
    add(
        "vonage-api-secret",
        format!("VONAGE_API_SECRET={s}\n"),
        s,
        "vonage secret\n".into(),
    );
    let s = format!("ntn_{}{}", r(DIGITS, 11, 407), r(ALNUM, 35, 408));
    add(
        "notion-token",
        format!("NOTION_TOKEN={s}\n"),
        s,
        "ntn_12345\nsecret_key_base\n".into(),
    );
    let s = format!("figd_{}", r(ALNUM, 40, 409));
    add(
        "figma-pat",
        format!("FIGMA_TOKEN={s}\n"),
        s,
        "figd_short\n".into(),
    );
    let s = format!("pk_{}_{}", r(DIGITS, 8, 410), r(UPALNUM, 32, 411));
    add(
        "clickup-api-token",
        format!("CLICKUP_TOKEN={s}\n"),
        s,
        "pk_live_public\n".into(),
    );
    let s = format!("ATTA{}{}", r(HEX, 64, 412), r(UPHEX, 8, 413));
    add(
        "trello-api-token",
        format!("TRELLO_TOKEN={s}\n"),
        s,
        "trello board 1234\n".into(),
    );
    let s = format!(
        "2/{}/{}:{}",
        r(DIGITS, 16, 414),
        r(DIGITS, 16, 415),
        r(ALNUM, 32, 416)
    );
    add(
        "asana-pat",
        format!("ASANA_PAT={s}\n"),
        s,
        "asana task 1/2\n".into(),
    );
    let s = r(ALNUM, 64, 417);
    add(
        "auth0-client-secret",
        format!("AUTH0_CLIENT_SECRET={s}\n"),
        s,
        "auth0 secret rotation docs\n".into(),
    );
    let s = format!("AQVN{}", r(ALNUM, 36, 418));
    add(
        "yandex-api-key",
        format!("YC_API_KEY={s}\n"),
        s,
        "AQVN\n".into(),
    );
    let s = format!("sl.{}", r(ALNUM, 140, 419));
    add(
        "dropbox-access-token",
        format!("DROPBOX_TOKEN={s}\n"),
        s,
        "see tsl.example and sl.short\n".into(),
    );
    let s = format!("pplx-{}", r(ALNUM, 48, 420));
    add(
        "perplexity-api-key",
        format!("PERPLEXITY_API_KEY={s}\n"),
        s,
        "pplx-short\n".into(),
    );
    let s = format!("gsk_{}", r(ALNUM, 52, 421));
    add(
        "groq-api-key",
        format!("GROQ_API_KEY={s}\n"),
        s,
        "gsk_short\n".into(),
    );
    let s = format!("xai-{}", r(ALNUM, 80, 422));
    add(
        "xai-api-key",
        format!("XAI_API_KEY={s}\n"),
        s,
        "xai-short\n".into(),
    );
    let s = format!("r8_{}", r(ALNUM, 37, 423));
    add(
        "replicate-api-token",
        format!("REPLICATE_API_TOKEN={s}\n"),
        s,
        "r8_short\n".into(),
    );
    let s = r(ALNUM, 40, 424);
    add(
        "cohere-api-key",
        format!("COHERE_API_KEY={s}\n"),
        s,
        "coherent text\n".into(),
    );
    let s = r(ALNUM, 32, 425);
    add(
        "mistral-api-key",
        format!("MISTRAL_API_KEY={s}\n"),
        s,
        "mistral-large-latest\n".into(),
    );
    let s = format!("lsv2_pt_{}_{}", r(HEX, 32, 426), r(HEX, 10, 427));
    add(
        "langsmith-api-key",
        format!("LANGSMITH_API_KEY={s}\n"),
        s,
        "lsv2_pt_\n".into(),
    );
    let s = format!("pcsk_{}", r(ALNUM, 70, 428));
    add(
        "pinecone-api-key",
        format!("PINECONE_API_KEY={s}\n"),
        s,
        "pcsk_short\n".into(),
    );
    let s = r(HEX, 40, 429);
    add(
        "wandb-api-key",
        format!("WANDB_API_KEY={s}\n"),
        s,
        "wandb login\n".into(),
    );
    let s = r(ALNUM, 16, 430);
    add(
        "url-credentials",
        format!("proxy = http://build:{s}@proxy.internal:3128\n"),
        s,
        "git clone https://user:${TOKEN}@host/repo\nhttps://user:password@example.com\nhttp://www.example.org/a@b\n\
         https://user:p%2Fss@artifactory.example.com/api\nftp://deploy:x7Gq2mP9@files.test\n".into(),
    );
    let s = format!("{}==", r(B64, 30, 431));
    add(
        "http-basic-auth",
        format!("Authorization: Basic {s}\n"),
        s,
        "Authorization: Basic <credentials>\n".into(),
    );
    let s = r(ALNUM, 40, 432);
    add(
        "http-bearer-token",
        format!("curl -H 'Authorization: Bearer {s}' https://api.example.org\n"),
        s,
        "Authorization: Bearer $TOKEN\nAuthorization: Bearer ${ACCESS_TOKEN}\n".into(),
    );
    v
}

#[test]
fn every_built_in_rule_finds_its_credential_and_not_its_look_alike() {
    let config = Config::defaults().expect("defaults");
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    for rule in &config.rules {
        rule.check().expect("every built-in regex compiles");
    }
    let ids: Vec<String> = config.rules.iter().map(|r| r.id.clone()).collect();
    let scanner = Scanner::new(config).expect("scanner");
    let cases = cases();
    for id in &ids {
        assert!(
            cases.iter().any(|c| c.0 == id),
            "rule {id} has no test case"
        );
    }
    for (rule, text, secret, fp) in &cases {
        assert!(ids.iter().any(|i| i == rule), "no rule {rule}");
        let found = scanner.scan(
            text.as_bytes(),
            Origin {
                path: "app/config.txt",
                commit: None,
            },
        );
        assert!(
            found
                .iter()
                .any(|f| f.rule_id == *rule && f.secret == *secret),
            "{rule} missed {secret:?} in {text:?}: {found:?}"
        );
        let quiet = scanner.scan(
            fp.as_bytes(),
            Origin {
                path: "app/config.txt",
                commit: None,
            },
        );
        assert!(
            !quiet.iter().any(|f| f.rule_id == *rule),
            "{rule} fired on {fp:?}: {quiet:?}"
        );
    }
}
