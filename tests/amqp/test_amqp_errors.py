"""Why an AMQP connection failed, in one line, from the nested exceptions pika reports."""

from __future__ import annotations

import socket
import ssl

import pytest
from pika import exceptions as pika_errors
from pika.adapters.utils.connection_workflow import AMQPConnectionWorkflowFailed, AMQPConnectorSocketConnectError

from machinery.brokers.amqp_errors import connect_failure, root_cause


def wrapped(cause: BaseException) -> BaseException:
    """``cause`` as pika hands it to an open-error callback."""
    return pika_errors.AMQPConnectionError(AMQPConnectionWorkflowFailed([AMQPConnectorSocketConnectError(cause)]))


def test_the_root_cause_is_found_under_the_workflow_wrappers() -> None:
    cause = ConnectionRefusedError(111, "Connection refused")
    assert root_cause(wrapped(cause)) is cause


@pytest.mark.parametrize(
    ("cause", "line"),
    [
        (ConnectionRefusedError(111, "Connection refused"),
         "connection refused to 127.0.0.1:5673 (is RabbitMQ running there?)"),
        (socket.gaierror(-2, "Name or service not known"),
         "cannot resolve the host '127.0.0.1' (Name or service not known)"),
        (TimeoutError("timed out"), "connecting to 127.0.0.1:5673 timed out"),
        (pika_errors.ProbableAuthenticationError("ACCESS_REFUSED"),
         "login refused by 127.0.0.1:5673 (check the user name and password)"),
        (pika_errors.ProbableAccessDeniedError("ConnectionClosedByBroker: (530) 'NOT_ALLOWED - vhost x not found'"),
         "access refused by 127.0.0.1:5673 (check the virtual host and its permissions): "
         "NOT_ALLOWED - vhost x not found"),
        (ssl.SSLError(1, "WRONG_VERSION_NUMBER"), "TLS handshake with 127.0.0.1:5673 failed: "),
        (pika_errors.ConnectionOpenAborted("Timeout while setting up AMQP"),
         "127.0.0.1:5673 did not complete the AMQP handshake (is it a RabbitMQ port?)"),
        (OSError(113, "No route to host"), "cannot connect to 127.0.0.1:5673: No route to host"),
    ],
    ids=["refused", "dns", "timeout", "login", "vhost", "tls", "not-amqp", "oserror"],
)
def test_each_cause_is_one_line_naming_it(cause: BaseException, line: str) -> None:
    text = connect_failure(wrapped(cause), "127.0.0.1", 5673)
    assert text.startswith(line)
    assert "\n" not in text
