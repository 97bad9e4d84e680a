# Real-service fixtures shared by the test suites (pytest only honours pytest_plugins in
# the top-level conftest).
pytest_plugins = ["tests.support.kafka_fixtures", "tests.support.store", "tests.support.alertmanager"]
