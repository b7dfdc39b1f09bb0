# Cloud Controller's Encryptor cipher, as described in cloud_controller_ng
# lib/cloud_controller/encryptor.rb (run_cipher, encrypt_raw, decrypt_raw), run through
# Ruby's own OpenSSL bindings to give the Python implementation independent test vectors.
#
# Reads one JSON object per line on stdin:
#   {"op": "encrypt" | "encrypt_mime" | "decrypt", "input": ..., "key": ..., "salt": ...,
#    "iterations": N}
# and prints one JSON object per line: {"output": ...} or {"error": ...}.
require 'openssl'
require 'base64'
require 'json'

def run_cipher(cipher, input, salt, key, iterations)
  if salt.length == 8
    cipher.pkcs5_keyivgen(key, salt)
  else
    cipher.key = OpenSSL::PKCS5.pbkdf2_hmac(key, salt, iterations, 16, OpenSSL::Digest.new('SHA256'))
    cipher.iv = salt
  end
  cipher.update(input) << cipher.final
end

STDOUT.sync = true
STDIN.each_line do |line|
  req = JSON.parse(line)
  begin
    cipher = OpenSSL::Cipher.new('AES-128-CBC')
    out = case req['op']
          when 'encrypt'
            Base64.strict_encode64(run_cipher(cipher.encrypt, req['input'], req['salt'], req['key'], req['iterations']))
          when 'encrypt_mime'
            Base64.encode64(run_cipher(cipher.encrypt, req['input'], req['salt'], req['key'], req['iterations']))
          when 'decrypt'
            run_cipher(cipher.decrypt, Base64.decode64(req['input']), req['salt'], req['key'], req['iterations']).force_encoding('UTF-8')
          end
    puts JSON.generate({ 'output' => out })
  rescue OpenSSL::Cipher::CipherError, ArgumentError, TypeError => e
    puts JSON.generate({ 'error' => "#{e.class}: #{e.message}" })
  end
end
