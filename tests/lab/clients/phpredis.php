<?php
// phpredis (Debian's php-redis) as a PHP application uses it, for tests/lab/test_clients.py.
//
//   php phpredis.php cache                      cache set/get with a TTL, FLUSHDB, denied commands
//   php phpredis.php session <id> [hold]        a PHP session stored in Redis, with session locking
//
// Connection from the environment (never from argv, so that no process listing shows the password):
// REDIS_HOST, REDIS_PORT, REDIS_USER (empty: password-only AUTH, as an old client sends it), REDIS_PASSWORD.
// Prints one JSON object; a failure prints {"error": ...} and exits 1. The password never reaches the output:
// every message is redacted before it is printed (PHP's session warnings quote session.save_path).

const CACHE_DB = 1;  // Laravel's cache connection uses database 1 by default; FLUSHDB empties only it.
const TIMEOUT_S = 3;

$warnings = [];

function settings(): array
{
    $names = ['REDIS_HOST', 'REDIS_PORT', 'REDIS_USER', 'REDIS_PASSWORD'];
    $values = [];
    foreach ($names as $name) {
        $value = getenv($name);
        if ($value === false || ($value === '' && $name !== 'REDIS_USER')) {
            throw new RuntimeException("$name is not set");
        }
        $values[$name] = $value;
    }
    return $values;
}

function redact(string $text): string
{
    $password = (string) getenv('REDIS_PASSWORD');
    if ($password === '') {
        return $text;
    }
    return str_replace([$password, rawurlencode($password), urlencode($password)], '<password>', $text);
}

function connect(array $s): Redis
{
    $redis = new Redis();
    $redis->connect($s['REDIS_HOST'], (int) $s['REDIS_PORT'], TIMEOUT_S, null, 0, TIMEOUT_S);
    $credentials = $s['REDIS_USER'] === '' ? $s['REDIS_PASSWORD'] : [$s['REDIS_USER'], $s['REDIS_PASSWORD']];
    if (!$redis->auth($credentials)) {
        throw new RuntimeException('AUTH refused: ' . $redis->getLastError());
    }
    return $redis;
}

// A command the user may not run: its error (phpredis 5.3 throws NOPERM for some commands and returns false with
// getLastError() for others), and whether the same connection still answers afterwards.
function denied(Redis $redis, string $name, callable $command): array
{
    $before = $redis->rawCommand('CLIENT', 'ID');
    $redis->clearLastError();
    try {
        $result = $command($redis);
        $error = $redis->getLastError();
    } catch (RedisException $e) {
        $result = null;
        $error = $e->getMessage();
    }
    return [
        'command' => $name,
        'result' => $result,
        'error' => $error,
        'same_connection_answers' => $redis->ping() === true && $redis->rawCommand('CLIENT', 'ID') === $before,
    ];
}

function cache(array $s): array
{
    $redis = connect($s);
    $redis->select(CACHE_DB);
    $key = 'test:clients:php:' . bin2hex(random_bytes(8));
    $set = $redis->setex($key, 120, 'cached value');
    $got = $redis->get($key);
    $ttl = $redis->ttl($key);
    $flushed = $redis->flushDB();  // what Laravel's cache:clear sends
    return [
        'set' => $set,
        'get' => $got,
        'ttl' => $ttl,
        'flushdb' => $flushed,
        'get_after_flushdb' => $redis->get($key),
        'denied' => [
            denied($redis, 'CONFIG GET', fn ($r) => $r->config('GET', 'maxmemory')),
            denied($redis, 'FLUSHALL', fn ($r) => $r->flushAll()),
        ],
    ];
}

// tcp://host:port?auth[]=user&auth[]=password (phpredis 5.3+), or auth=password for a password-only client.
function save_path(array $s): string
{
    $auth = $s['REDIS_USER'] === ''
        ? 'auth=' . rawurlencode($s['REDIS_PASSWORD'])
        : 'auth[]=' . rawurlencode($s['REDIS_USER']) . '&auth[]=' . rawurlencode($s['REDIS_PASSWORD']);
    return sprintf('tcp://%s:%d?timeout=%d&read_timeout=%d&%s', $s['REDIS_HOST'], (int) $s['REDIS_PORT'], TIMEOUT_S, TIMEOUT_S, $auth);
}

function session(array $s, string $id, bool $hold): array
{
    ini_set('session.save_handler', 'redis');
    ini_set('session.save_path', save_path($s));
    ini_set('session.use_cookies', '0');
    ini_set('session.use_strict_mode', '0');
    ini_set('session.gc_maxlifetime', '600');
    ini_set('redis.session.locking_enabled', '1');
    ini_set('redis.session.lock_expire', '60');
    ini_set('redis.session.lock_wait_time', '20000');  // microseconds between attempts
    ini_set('redis.session.lock_retries', '-1');  // wait for the lock as long as it takes (lock_expire bounds it)
    session_id($id);
    if (!session_start()) {
        throw new RuntimeException('session_start failed');
    }
    $read = $_SESSION['count'] ?? 0;
    if ($hold) {
        // Tell the test that this process holds the session (and its lock), then wait for its go.
        fwrite(STDOUT, json_encode(['holding' => true, 'read' => $read]) . "\n");
        fflush(STDOUT);
        fgets(STDIN);
    }
    $_SESSION['count'] = $read + 1;
    if (!session_write_close()) {
        throw new RuntimeException('session_write_close failed');
    }
    return ['read' => $read, 'wrote' => $read + 1, 'locking' => ini_get('redis.session.locking_enabled')];
}

function main(array $argv): array
{
    $s = settings();
    switch ($argv[1] ?? '') {
        case 'cache':
            return cache($s);
        case 'session':
            if (!preg_match('/^[a-zA-Z0-9-]{16,}$/', $argv[2] ?? '')) {
                throw new InvalidArgumentException('session needs an id of 16 or more letters, digits and dashes');
            }
            return session($s, $argv[2], ($argv[3] ?? '') === 'hold');
        default:
            throw new InvalidArgumentException('usage: phpredis.php cache | session <id> [hold]');
    }
}

set_error_handler(function (int $level, string $message) use (&$warnings): bool {
    $warnings[] = redact($message);
    return true;
});
try {
    $result = main($argv);
    $result['warnings'] = $warnings;
    echo json_encode($result), "\n";
} catch (Throwable $e) {
    echo json_encode(['error' => redact(get_class($e) . ': ' . $e->getMessage()), 'warnings' => $warnings]), "\n";
    exit(1);
}
