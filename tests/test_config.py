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
