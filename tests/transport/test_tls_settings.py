"""TLS settings without a server: the client context they build, and TLS failures read as one line."""

from __future__ import annotations

import ssl

import pytest

from machinery import Config, load_config
from machinery.errors import ConfigError
from machinery.tls import TLSSettings, describe_tls_error


def test_the_default_context_verifies_the_server_with_tls_1_2_or_later() -> None:
    context = TLSSettings().context()
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2


def test_without_verification_nothing_is_checked() -> None:
    context = TLSSettings(verify=False).context()
    assert context.verify_mode == ssl.CERT_NONE and not context.check_hostname
    assert TLSSettings(verify=False).redis_options()["ssl_cert_reqs"] == "none"


def test_the_settings_come_from_the_config() -> None:
    config = load_config(environ={"MACHINERY_TLS_CA_FILE": "/ca.pem", "MACHINERY_TLS_VERIFY": "no"},
                         tls_server_hostname="rabbit.internal")
    assert TLSSettings.from_config(config) == TLSSettings(ca_file="/ca.pem", verify=False,
                                                          server_hostname="rabbit.internal")
    assert TLSSettings.from_config(Config()) == TLSSettings()


def test_a_missing_ca_file_is_a_config_error_naming_it() -> None:
    with pytest.raises(ConfigError, match=r"config tls_ca_file \(from /nowhere/ca\.pem: No such file"):
        TLSSettings(ca_file="/nowhere/ca.pem").context()


def test_a_key_without_its_certificate_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="tls_cert_file"):
        TLSSettings(key_file="/k.pem").context()


class Wrapper(Exception):
    """Like pika's connector errors: the cause kept in an attribute."""

    def __init__(self, exception: BaseException) -> None:
        super().__init__()
        self.exception = exception


class Workflow(Exception):
    def __init__(self, exceptions: list[BaseException]) -> None:
        super().__init__()
        self.exceptions = tuple(exceptions)


def test_a_certificate_failure_deep_in_wrappers_is_one_line() -> None:
    cause = ssl.SSLCertVerificationError(1, "certificate verify failed")
    cause.verify_message = "self-signed certificate in certificate chain"
    text = describe_tls_error(Workflow([Wrapper(cause)]))
    assert text == "TLS: server certificate not trusted (self-signed certificate in certificate chain)"


@pytest.mark.parametrize("exc", [
    Exception("StreamLostError: SSLError(1, '[SSL: TLSV13_ALERT_CERTIFICATE_REQUIRED] tlsv13 alert')"),
    Exception("Stream connection lost: SSLEOFError(8, 'EOF occurred in violation of protocol')"),
    ssl.SSLEOFError(8, "EOF occurred in violation of protocol"),
])
def test_a_missing_client_certificate_is_named(exc: BaseException) -> None:
    text = describe_tls_error(Wrapper(exc))
    assert text is not None and text.startswith("TLS: the server") and "client certificate" in text


def test_other_errors_are_not_tls_errors() -> None:
    assert describe_tls_error(ConnectionRefusedError(111, "Connection refused")) is None

