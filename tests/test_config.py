import pytest

from inventory.config import DATABASE_URL_ENV, render, resolve_url
from inventory.errors import ConfigurationError


def test_default_is_embedded_file(monkeypatch):
    monkeypatch.delenv(DATABASE_URL_ENV, raising=False)
    url = resolve_url()
    assert url.get_backend_name() == "sqlite"
    assert url.database == "inventory.sqlite"


def test_environment_selects_postgis(monkeypatch):
    monkeypatch.setenv(DATABASE_URL_ENV, "postgresql://me:pw@dbhost:5432/inv")
    url = resolve_url()
    assert url.drivername == "postgresql+psycopg"
    assert url.host == "dbhost"


def test_option_wins_over_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(DATABASE_URL_ENV, "postgresql+psycopg://me:pw@dbhost/inv")
    url = resolve_url(tmp_path / "x.sqlite")
    assert url.get_backend_name() == "sqlite"
    assert url.database == str(tmp_path / "x.sqlite")


def test_password_never_rendered():
    url = resolve_url("postgresql+psycopg://me:s3cret@dbhost/inv")
    assert "s3cret" not in render(url)
    assert "me:***@dbhost" in render(url)


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("mysql://me:s3cret@h/db", "is for 'mysql'"),
        ("postgresql+asyncpg://me:s3cret@h/db", "use postgresql+psycopg://"),
        ("sqlite://", "names no file"),
        ("sqlite:///:memory:", "names no file"),
    ],
)
def test_unsupported_urls_are_explained_without_password(raw, fragment):
    with pytest.raises(ConfigurationError) as err:
        resolve_url(raw)
    assert fragment in str(err.value)
    assert "s3cret" not in str(err.value)


@pytest.mark.parametrize(
    ("raw", "secret"),
    [
        ("postgresql+psycopg://me@dbhost/inv?password=s3cret", "s3cret"),
        ("postgresql+psycopg://me@dbhost/inv?sslmode=require&PASSWORD=s3cret", "s3cret"),
        ("postgresql+psycopg://me:p@ss3cret@dbhost/inv", "ss3cret"),
        ("postgresql+psycopg://me:a@b@c@dbhost/inv", "b@c"),
    ],
)
def test_no_part_of_a_password_is_rendered(raw, secret):
    """A password in the query or with a bare "@" never shows, not even in part (#17)."""
    url = resolve_url(raw)
    assert url.host == "dbhost"
    shown = render(url)
    assert secret not in shown and "***" in shown
    assert "dbhost/inv" in shown


def test_driver_messages_are_masked():
    from inventory.config import hide_secrets

    url = resolve_url("postgresql+psycopg://me:pw1@dbhost/inv?password=s3cret")
    assert hide_secrets("auth failed for pw1 and s3cret", url) == "auth failed for *** and ***"


def test_a_bare_at_in_the_password_is_kept_whole():
    url = resolve_url("postgresql+psycopg://me:p@ss@dbhost:5433/inv")
    assert (url.username, url.password, url.host, url.port) == ("me", "p@ss", "dbhost", 5433)
