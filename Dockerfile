FROM python:3.11-slim
# Production mode: the container refuses to start without SECRET_KEY (docker run -e SECRET_KEY=…).
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 ENVIRONMENT=production
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
RUN SECRET_KEY=build-only-not-secret-build-only-not-secret-build-only python manage.py collectstatic --noinput
RUN useradd --system engine && mkdir -p /tmp/metrics && chown engine /tmp/metrics
USER engine
EXPOSE 3003
CMD ["daphne", "-v", "0", "-b", "0.0.0.0", "-p", "3003", "intervention_engine.asgi:application"]
