"""Every setting of the service, in one typed tree read from ``KINEMA_*`` environment variables.

Each field here is documented in ``docs/configuration.md``; a test keeps the two in step.
Every command (``serve``, ``worker``, ``keys``, ``credits``, ``migrate``) reads the same
settings, so they all act on the same database and files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Positive = Annotated[float, Field(gt=0)]


class Settings(BaseSettings):
    """The service's configuration; construct it with keyword arguments in tests."""

    model_config = SettingsConfigDict(env_prefix="KINEMA_", extra="forbid", frozen=True)

    # Where things live.
    data_dir: Path = Path("data")
    database_url: str = ""
    database_busy_timeout_seconds: Positive = 10.0
    public_url: str = ""  #: Unset: the address served, ``http://HOST:PORT`` (see `listening_url`).
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8000

    # Where files live: the local folder, or an S3 bucket.
    storage: Literal["local", "s3"] = "local"
    s3_bucket: str = ""
    s3_prefix: str = ""
    s3_endpoint_url: str = ""  #: Unset: AWS itself.
    s3_region: str = ""  #: Unset: the standard AWS chain (``AWS_REGION``, the config file).
    s3_access_key_id: SecretStr | None = None  #: Unset: the standard AWS credentials chain.
    s3_secret_access_key: SecretStr | None = None
    s3_path_style: bool = False
    s3_links: Literal["presigned", "proxy"] = "presigned"
    s3_multipart_threshold_bytes: Annotated[int, Field(ge=5 * 1024 * 1024)] = 64 * 1024 * 1024
    s3_max_attempts: Annotated[int, Field(ge=1)] = 3
    s3_timeout_seconds: Positive = 10

    # Generation.
    engine: str = "motion"
    model_engines: dict[str, str] = Field(default_factory=dict)
    workers: Annotated[int, Field(ge=0)] = 1
    max_running_per_account: Annotated[int, Field(ge=1)] = 2
    intake_threads: Annotated[int, Field(ge=1)] = 4
    intakes_per_account: Annotated[int, Field(ge=1)] = 2
    task_timeout_seconds: Positive = 3600
    lease_seconds: Positive = 30
    max_attempts: Annotated[int, Field(ge=1)] = 3
    poll_seconds: Positive = 1.0
    engine_process: list[str] = Field(default_factory=lambda: ["diffusers"])
    #: The engines a `kinema worker` runs (empty: every engine a model is routed to).
    worker_engines: list[str] = Field(default_factory=list)
    #: The models a `kinema worker` takes (empty: every model its engines serve).
    worker_models: list[str] = Field(default_factory=list)
    #: On SIGTERM, how long running tasks may take to finish before they are handed back.
    drain_seconds: Annotated[float, Field(ge=0)] = 20
    engine_stop_grace_seconds: Positive = 60

    # The motion engine.
    motion_depth: Literal["on", "off"] = "on"

    # The minimax engine: Hailuo through MiniMax's API.
    minimax_api_key: SecretStr | None = None
    minimax_base_url: str = "https://api.minimax.io"
    minimax_poll_seconds: Positive = 10
    minimax_rate_limit: str = "5/minute"
    minimax_models: dict[str, str] = Field(
        default_factory=lambda: {
            "hailuo/2-3-image-to-video-standard": "MiniMax-Hailuo-2.3",
            "hailuo/2-3-image-to-video-pro": "MiniMax-Hailuo-2.3",
            "hailuo/02-image-to-video-standard": "MiniMax-Hailuo-02",
            "hailuo/02-text-to-video-standard": "MiniMax-Hailuo-02",
        }
    )

    # The diffusers engine: open-weight models on a GPU.
    diffusers_model: Literal["wan", "ltx"] = "wan"
    diffusers_weights_dir: Path | None = None
    diffusers_offload: Literal["none", "model", "group"] = "none"
    diffusers_vae_tiling: bool = False
    diffusers_steps: Annotated[int, Field(ge=1)] = 30
    diffusers_seed: int | None = None

    # Inputs.
    allow_private_urls: bool = False
    fetch_timeout_seconds: Positive = 30
    url_fetch_threads: Annotated[int, Field(ge=1)] = 8
    url_uploads_per_account: Annotated[int, Field(ge=1)] = 3
    image_decodes_at_once: Annotated[int, Field(ge=1)] = 2

    # Access and money.
    admin_token: SecretStr | None = None
    secret_key: SecretStr | None = None
    prices: dict[str, int] = Field(default_factory=dict)
    starter_credits: Annotated[int, Field(ge=0)] = 1000

    # Rate limits, in the `limits` library's notation ("20/10 seconds").
    create_task_rate_limit: str = "20/10 seconds"
    record_info_rate_limit: str = "10/second"
    url_upload_rate_limit: str = "20/minute"
    redeliver_rate_limit: str = "10/minute"
    rate_limit_storage_url: str = "memory://"

    # Callbacks.
    callback_retry_schedule: list[Annotated[float, Field(gt=0)]] = Field(
        default_factory=lambda: [5.0, 30.0, 120.0, 600.0, 1800.0, 3600.0], min_length=1
    )
    callback_retry_window_hours: Positive = 24
    callback_timeout_seconds: Positive = 15

    # Uploads.
    upload_types: list[str] = Field(default_factory=lambda: ["image/jpeg", "image/png", "image/webp"])
    upload_max_bytes: Annotated[int, Field(gt=0)] = 10 * 1024 * 1024

    # Links and retention.
    result_link_seconds: Positive = 24 * 3600
    upload_retention_days: Positive = 3
    result_retention_days: Positive = 14
    task_retention_days: Positive = 60
    sweep_seconds: Positive = 300
    idempotency_hours: Positive = 24

    # Behaviour of the API.
    maintenance: bool = False
    strict_http_status: bool = False
    log_level: str = "INFO"
    cors_origins: list[str] = Field(default_factory=list)

    @field_validator("public_url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must be an absolute http or https URL")
        return value.rstrip("/")

    @field_validator(
        "create_task_rate_limit",
        "record_info_rate_limit",
        "url_upload_rate_limit",
        "redeliver_rate_limit",
        "minimax_rate_limit",
    )
    @classmethod
    def _rate_limit_parses(cls, value: str) -> str:
        from limits import parse

        try:
            parse(value)
        except ValueError as error:
            raise ValueError(f"{value!r} is not a rate limit like '20/10 seconds'") from error
        return value

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        from urllib.parse import urlsplit

        for origin in value:
            parts = urlsplit(origin)
            if origin != "*" and (
                parts.scheme not in ("http", "https")
                or not parts.netloc
                or origin != f"{parts.scheme}://{parts.netloc}"
            ):
                raise ValueError(f"{origin!r} is not an origin like 'https://app.example.com' (or '*')")
        return value

    @field_validator("upload_types")
    @classmethod
    def _known_types(cls, value: list[str]) -> list[str]:
        from kinema.media.types import KNOWN_TYPES

        unknown = sorted(set(value) - KNOWN_TYPES)
        if unknown:
            raise ValueError(
                f"cannot recognise {', '.join(unknown)}; known types: {', '.join(sorted(KNOWN_TYPES))}"
            )
        return value

    @field_validator("s3_endpoint_url")
    @classmethod
    def _endpoint_is_a_url(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must be an absolute http or https URL")
        return value.rstrip("/")

    @field_validator("s3_prefix")
    @classmethod
    def _prefix_is_a_folder(cls, value: str) -> str:
        from kinema.storage.base import check_key

        folder = value.strip("/")
        if folder:
            check_key(folder)
        return folder

    @field_validator("secret_key")
    @classmethod
    def _secret_long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().encode()) < 16:
            raise ValueError("must be at least 16 bytes")
        return value

    @model_validator(mode="after")
    def _s3_complete(self) -> Settings:
        if self.storage == "s3" and not self.s3_bucket:
            raise ValueError("KINEMA_STORAGE=s3 needs KINEMA_S3_BUCKET")
        if (self.s3_access_key_id is None) != (self.s3_secret_access_key is None):
            raise ValueError("KINEMA_S3_ACCESS_KEY_ID and KINEMA_S3_SECRET_ACCESS_KEY go together")
        return self

    @model_validator(mode="after")
    def _database_in_data_dir(self) -> Settings:
        if not self.database_url:
            object.__setattr__(self, "database_url", f"sqlite:///{self.data_dir / 'kinema.db'}")
        if not self.public_url:
            object.__setattr__(self, "public_url", listening_url(self.host, self.port))
            self.__pydantic_fields_set__.discard("public_url")
        return self

    @property
    def public_url_is_set(self) -> bool:
        """Whether the public address was given (``KINEMA_PUBLIC_URL``) rather than derived."""
        return "public_url" in self.model_fields_set

    @property
    def files_dir(self) -> Path:
        """Uploaded images and generated videos (with S3, only what is being made)."""
        return self.data_dir / "files"


def listening_url(host: str, port: int) -> str:
    """The address a client on this machine reaches a server listening on `host`:`port` at.

    A server on every interface (``0.0.0.0``, ``::``) is reached through the loopback.
    """
    reachable = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    if ":" in reachable:
        reachable = f"[{reachable}]"
    return f"http://{reachable}:{port}"
